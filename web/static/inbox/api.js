// The inbox talks to /api/v1 through the shared helper (CSRF, errors, logged-out).
export { ApiError, api } from "../api.js";

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
