// Offline answers for the Google Fonts requests of the release's `next/font/google` calls.
//
// `next build --webpack` reads this module when NEXT_FONT_GOOGLE_MOCKED_RESPONSES names it: each
// Google Fonts CSS URL maps to the CSS Google would send, and a font file given by an absolute path
// is read from disk. The fonts are the Geist and Geist Mono subsets that the `next` package ships
// itself (for its dev overlay), so no font is fetched and none is added to the release.
//
// The URLs are the ones next's font loader makes for `Geist({subsets: ["latin"]})` and
// `Geist_Mono({subsets: ["latin"]})` (variable fonts, default weight and display): see
// get-google-fonts-url.js in next/dist/compiled/@next/font/dist/google.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

// Looked up from the build's working directory (the application's root), where node_modules is.
const NEXT_DIR = path.dirname(require.resolve("next/package.json", { paths: [process.cwd(), __dirname] }));
const FONT_DIR = path.join(NEXT_DIR, "dist", "next-devtools", "server", "font");

// Google's unicode ranges for these subsets; the comment line above each @font-face names the
// subset, which next uses to pick the files it preloads.
const SUBSETS = [
  [
    "latin-ext",
    "U+0100-02BA, U+02BD-02C5, U+02C7-02CC, U+02CE-02D7, U+02DD-02FF, U+0304, U+0308, U+0329, " +
      "U+1D00-1DBF, U+1E00-1E9F, U+1EF2-1EFF, U+2020, U+20A0-20AB, U+20AD-20C0, U+2113, U+2C60-2C7F, U+A720-A7FF",
  ],
  [
    "latin",
    "U+0000-00FF, U+0131, U+0152-0153, U+02BB-02BC, U+02C6, U+02DA, U+02DC, U+0304, U+0308, U+0329, " +
      "U+2000-206F, U+20AC, U+2122, U+2191, U+2193, U+2212, U+2215, U+FEFF, U+FFFD",
  ],
];

function fontFaces(family, filePrefix) {
  return SUBSETS.map(([subset, range]) => {
    const file = path.join(FONT_DIR, `${filePrefix}-${subset}.woff2`);
    if (!fs.existsSync(file)) {
      throw new Error(`next-font-google-mocks: ${file} is missing (has the next package moved its fonts?)`);
    }
    // The shipped files cover weights 400 to 600 (next's own CSS for them says so).
    return [
      `/* ${subset} */`,
      "@font-face {",
      `  font-family: '${family}';`,
      "  font-style: normal;",
      "  font-weight: 400 600;",
      "  font-display: swap;",
      `  src: url(${file}) format('woff2');`,
      `  unicode-range: ${range};`,
      "}",
      "",
    ].join("\n");
  }).join("");
}

module.exports = {
  "https://fonts.googleapis.com/css2?family=Geist:wght@100..900&display=swap": fontFaces("Geist", "geist"),
  "https://fonts.googleapis.com/css2?family=Geist+Mono:wght@100..900&display=swap": fontFaces(
    "Geist Mono",
    "geist-mono",
  ),
};
