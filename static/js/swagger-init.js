// Starts the vendored Swagger UI on /docs (an external script: the page's CSP allows no inline script).
// The schema URL comes from the page; requests "Try it out" makes carry the session cookie, and unsafe ones
// the session's CSRF token, read from /api/auth/me.
(async function start() {
  const root = document.getElementById("swagger-ui");
  let csrf = null;
  try {
    const me = await fetch("/api/auth/me", { headers: { accept: "application/json" } });
    csrf = me.headers.get("X-CSRF-Token");
  } catch (_) { /* not signed in: reads of a public install still work */ }
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (req) => {
      if (csrf && !["GET", "HEAD", "OPTIONS"].includes((req.method || "GET").toUpperCase())) {
        req.headers["X-CSRF-Token"] = csrf;
      }
      return req;
    },
  });
})();
