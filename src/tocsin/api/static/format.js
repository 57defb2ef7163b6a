// tocsin dashboard: formatting that never throws. An event time JavaScript's Date cannot hold (a far-future
// or millisecond time, NaN) shows as its number of seconds instead of throwing "Invalid time value" and
// blanking the page. Loaded before app.js; also a CommonJS module for tests/api/test_dashboard_format.py.
"use strict";

// 0000-01-01 to 9999-12-31: the years an ISO date shows in its fixed 19-character form
const FIRST_MS = -62167219200000, LAST_MS = 253402300799999;

// a Date for epoch seconds, or null (a gap in a chart) when there is none to show
function toDate(seconds) {
  if (typeof seconds !== "number") return null;
  const ms = seconds * 1000;
  return Number.isFinite(ms) && ms >= FIRST_MS && ms <= LAST_MS ? new Date(ms) : null;
}

function fmtTime(t) {
  if (t == null || t === "") return "–";
  const date = toDate(t);
  if (date === null) return typeof t === "number" ? `${t} s` : String(t);
  return date.toISOString().replace("T", " ").slice(0, 19);
}

function fmtNum(n, digits = 0) {
  if (n == null || Number.isNaN(Number(n))) return "–";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

if (typeof module !== "undefined") module.exports = { toDate, fmtTime, fmtNum };
