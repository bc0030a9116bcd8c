// A stand-in for one chunk of a Next.js build's browser code, as ArgusAI's published frontend image holds
// them: its API URL baked in at build time (NEXT_PUBLIC_API_URL, the release Dockerfile's default).
let e="http://localhost:8000";const API=e;fetch(`http://localhost:8000/api/v1/cameras`);
