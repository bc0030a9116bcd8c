"""How users reach the stack: plain HTTP, or HTTPS through the proxy with a certificate from one source.

- `entry`: the way in, decided once (`entry_point`): ports, origins, the proxy, the URL outputs;
- `sources`: where the certificate comes from (pure: Caddyfile pieces, uploads, HSTS, outputs);
- `proxy`: the proxy component (it owns its volume, its mount path and the stack CA's printer);
- `certs`: the checks of an operator's certificate, key and CA bundles (run by settings).
"""
