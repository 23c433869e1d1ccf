// fetch() for /api/v1, shared by every page: the session's CSRF token on writes (from the
// page's [data-csrf] element), a logged-out session back to /login, and errors carrying
// the server's JSON (`detail`, `error` code, `reasons`).
const csrf = document.querySelector("[data-csrf]")?.dataset.csrf || "";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `request failed (${status})`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.error;
    this.reasons = this.body.reasons || [this.message];
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf;
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) { window.location.assign("/login"); throw new ApiError(401, null); }
  let data = null;
  if (res.status !== 204) { try { data = await res.json(); } catch { data = null; } }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
