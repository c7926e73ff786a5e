// Renders the broker's own /openapi.json with Swagger UI (ui/vendor/swagger-ui/). Read
// only: no "Try it out" (a reference page has no business holding a caller's token), no
// validator badge (it would call a server off this broker), no configuration taken from
// the page's query string.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    queryConfigEnabled: false,
    supportedSubmitMethods: [],
    defaultModelsExpandDepth: 0,
  });
});
