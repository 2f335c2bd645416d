// URLs come from the server (app/catalog/urls.py `url_templates`, in each page's JSON data): a script only fills
// the `{name}` fields of a template it was given, so it never writes an API path of its own.

/** The URL templates of this page (the `url-templates` JSON block). */
export const URLS = JSON.parse(document.getElementById("url-templates")?.textContent || "{}");

/** `template` with each `{name}` replaced by params[name] (URI-encoded). */
export function fillUrl(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? encodeURIComponent(String(params[name])) : whole));
}

/** Headers a write from this page sends: the session's CSRF token (from the page's `csrf-token` meta). */
export function writeHeaders(extra = {}) {
  const token = document.querySelector('meta[name="csrf-token"]')?.content;
  return token ? { ...extra, "X-CSRF-Token": token } : { ...extra };
}
