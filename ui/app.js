// The audit console: reads the trail through /v1/audit/* with the auditor's bearer token.
// Untrusted text (subjects, user agents, everything from events) only ever reaches the
// page as textContent, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "rtb.console.token";
  const PKCE_KEY = "rtb.console.pkce";
  const $ = (id) => document.getElementById(id);
  const state = {
    token: null, // bearer token; null in an unauthenticated demo
    anonymous: false,
    config: null,
    filters: {},
    cursors: [null], // cursor of each page seen; index = page number - 1
    page: 0,
    next: null,
    lookup: null, // {sha, events} while showing a token lookup
    statsFor: null, // filters the charts were drawn for
  };

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // ---- API ------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    let res;
    try {
      res = await fetch(path, { ...options, headers, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError(0, "The broker could not be reached.");
    }
    if (!res.ok) {
      let detail = `${res.status} ${res.statusText}`;
      try {
        const problem = await res.json();
        if (problem && problem.detail) detail = problem.detail;
      } catch (e) { /* not problem+json */ }
      throw new ApiError(res.status, detail);
    }
    return res;
  }

  // Loaders that can be overtaken (a page-size change while the filters' answer is still
  // on its way, a second click on the chain badge): each call takes a turn, and an answer
  // or an error is shown only if no later call of the same loader has started meanwhile,
  // so a slow, older answer never replaces a newer one.
  function turns() {
    let latest = 0;
    return () => {
      const mine = ++latest;
      return () => mine === latest;
    };
  }
  const eventsTurn = turns(); // everything that fills the events table
  const chainTurn = turns();
  const chartsTurn = turns();

  // Runs `load` unless it is overtaken: returns what it returns, or undefined when a later
  // call started before it finished (its answer or error then counts for nothing).
  async function unlessOvertaken(turn, load) {
    const current = turn();
    try {
      const value = await load();
      return current() ? value : undefined;
    } catch (e) {
      if (current()) throw e;
      return undefined;
    }
  }

  function explain(e) {
    if (e.status === 401) return `The broker did not accept this sign-in: ${e.message}`;
    if (e.status === 403 && state.anonymous) return "The anonymous caller is not an auditor: an [[auditors]] entry with issuer = \"none\" and subject = \"anonymous\" lets it read the audit trail.";
    if (e.status === 403) return "This identity is not an auditor: the broker's [[auditors]] do not include it, so it may not read the audit trail.";
    if (e.status === 503) return `The audit trail is unavailable: ${e.message}`;
    return e.message;
  }

  // ---- Sign-in --------------------------------------------------------------------

  function b64url(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function randomString(n) {
    return b64url(crypto.getRandomValues(new Uint8Array(n)));
  }
  function jwtClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
    } catch (e) {
      return {};
    }
  }
  const redirectUri = () => `${location.origin}/ui/`;

  async function startSso() {
    const oidc = state.config.oidc;
    const verifier = randomString(48);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const pkce = { verifier, state: randomString(24), nonce: randomString(24) };
    sessionStorage.setItem(PKCE_KEY, JSON.stringify(pkce));
    const url = new URL(oidc.authorization_endpoint);
    const params = {
      response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(),
      scope: oidc.scope, state: pkce.state, nonce: pkce.nonce,
      code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: "S256",
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    location.assign(url.toString());
  }

  // Back from the identity provider with ?code&state (or ?error).
  async function finishSso(params) {
    history.replaceState(null, "", "/ui/");
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    if (params.get("error")) {
      throw new Error(`The identity provider did not sign you in (${params.get("error")}).`);
    }
    if (!saved || saved.state !== params.get("state")) {
      throw new Error("This sign-in was not started here, or has expired: sign in again.");
    }
    const res = await api("/ui/oidc/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: params.get("code"), code_verifier: saved.verifier, redirect_uri: redirectUri() }),
    });
    const answer = await res.json();
    if (jwtClaims(answer.id_token).nonce !== saved.nonce) {
      throw new Error("The identity provider's answer does not belong to this sign-in: sign in again.");
    }
    return answer.id_token;
  }

  async function signIn(token, anonymous) {
    state.token = token;
    state.anonymous = anonymous;
    try {
      await api("/v1/audit/events?limit=1");
    } catch (e) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      throw e;
    }
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    const claims = token ? jwtClaims(token) : {};
    $("whoami").textContent = anonymous ? "Signed in: unauthenticated demo" : `Signed in as ${claims.sub || "(no subject)"}`;
    $("sign-in").hidden = true;
    $("console").hidden = false;
    $("session").hidden = false;
    $("token-input").value = "";
    setRange(Number($("f-range").value));
    readFilters();
    await Promise.all([loadEvents(), verifyChain()]);
    $("main").focus();
  }

  function showSignIn(message) {
    $("console").hidden = true;
    $("session").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("sso").hidden = !(state.config && state.config.oidc);
    $("anonymous").hidden = !(state.config && state.config.unauthenticated);
  }

  function signOut() {
    state.token = null;
    state.anonymous = false;
    // Answers still on their way belong to the session that ended.
    eventsTurn();
    chainTurn();
    chartsTurn();
    accessTurn();
    for (const t of ["access-review", "access-open", "access-past"]) $(t).tBodies[0].replaceChildren();
    // The next auditor's charts are drawn anew, even for the same filters.
    state.statsFor = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("events").tBodies[0].replaceChildren();
    showTab("events");
    showSignIn("");
    $("token-input").focus();
  }

  // ---- Filters --------------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  function toInput(date) {
    return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  }
  function fromInput(value) {
    if (!value) return null;
    const v = value.length === 16 ? `${value}:00` : value;
    return `${v}Z`;
  }
  function setRange(seconds) {
    const now = new Date();
    $("f-since").value = toInput(new Date(now.getTime() - seconds * 1000));
    $("f-until").value = "";
  }

  function readFilters() {
    const f = {};
    const since = fromInput($("f-since").value);
    const until = fromInput($("f-until").value);
    if (since) f.since = since;
    if (until) f.until = until;
    for (const [id, key] of [["f-subject", "subject"], ["f-issuer", "issuer"], ["f-target", "target"], ["f-db-user", "db_user"], ["f-kind", "kind"], ["f-outcome", "outcome"]]) {
      const v = $(id).value.trim();
      if (v) f[key] = v;
    }
    state.filters = f;
  }

  function query(extra) {
    const p = new URLSearchParams({ ...state.filters, ...extra });
    return p.toString();
  }

  async function applyFilters(event) {
    event.preventDefault();
    $("filter-error").textContent = "";
    const token = $("f-token").value.trim();
    try {
      if (token) {
        await lookupToken(token);
        return;
      }
      state.lookup = null;
      if ($("f-range").value !== "custom") setRange(Number($("f-range").value));
      readFilters();
      state.cursors = [null];
      state.page = 0;
      await loadEvents();
      state.statsFor = null;
      if (!$("panel-charts").hidden) await loadCharts();
    } catch (e) {
      $("filter-error").textContent = explain(e);
    }
  }

  async function lookupToken(token) {
    const found = await unlessOvertaken(eventsTurn, async () => {
      if (/^[0-9a-fA-F]{64}$/.test(token)) {
        const sha = token.toLowerCase();
        const res = await api(`/v1/audit/events?${new URLSearchParams({ token_sha256: sha, limit: "1000" })}`);
        return { sha, events: (await res.json()).events };
      }
      const res = await api("/v1/audit/lookup", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
      });
      const body = await res.json();
      return { sha: body.token_sha256, events: body.events };
    });
    $("f-token").value = "";
    if (!found) return;
    const { sha, events } = found;
    state.lookup = { sha, events };
    renderEvents(events, `Token lookup (SHA-256 ${sha.slice(0, 12)}…): ${events.length === 0 ? "this broker did not issue it" : `${events.length} event${events.length === 1 ? "" : "s"}`}`);
    $("prev").disabled = true;
    $("next").disabled = true;
    $("page-label").textContent = "";
    showTab("events");
  }

  // ---- Events table ---------------------------------------------------------------

  let shown = [];

  async function loadEvents() {
    const limit = $("page-size").value;
    const cursor = state.cursors[state.page];
    const extra = { limit };
    if (cursor) extra.cursor = cursor;
    const body = await unlessOvertaken(eventsTurn, async () => (await api(`/v1/audit/events?${query(extra)}`)).json());
    if (!body) return;
    state.next = body.next_cursor;
    const first = state.page * Number(limit) + 1;
    const last = first + body.events.length - 1;
    const summary = body.events.length === 0
      ? "No events match these filters."
      : `Showing events ${first}–${last}${state.next ? "" : ` of ${last}`}, newest first.`;
    renderEvents(body.events, summary);
    $("prev").disabled = state.page === 0;
    $("next").disabled = !state.next;
    $("page-label").textContent = `Page ${state.page + 1}`;
    const targets = new Set([...$("known-targets").options].map((o) => o.value));
    for (const e of body.events) {
      if (e.target && !targets.has(e.target)) {
        targets.add(e.target);
        $("known-targets").append(h("option", { value: e.target }));
      }
    }
  }

  function renderEvents(events, summary) {
    shown = events;
    $("result-summary").textContent = summary;
    const rows = events.map((e, i) => h("tr", { "data-id": e.id },
      h("td", { class: "time" }, h("button", { type: "button", class: "link", "data-index": i, "aria-describedby": "details-hint" }, e.time.replace("T", " ").replace("Z", ""))),
      h("td", {}, h("span", { class: `badge o-${e.outcome}` }, e.outcome)),
      h("td", {}, e.subject || "–"),
      h("td", {}, e.issuer || "–"),
      h("td", {}, e.target || "–"),
      h("td", {}, e.db_user || "–"),
      h("td", {}, e.client_ip || "–"),
      h("td", {}, e.cache || "–"),
      h("td", { class: "num" }, e.count),
    ));
    if (!rows.length) rows.push(h("tr", { class: "empty" }, h("td", { colspan: 9 }, "No events.")));
    $("events").tBodies[0].replaceChildren(...rows);
  }

  async function page(delta) {
    try {
      if (delta > 0 && state.next) {
        state.cursors[state.page + 1] = state.next;
        state.page += 1;
      } else if (delta < 0 && state.page > 0) {
        state.page -= 1;
      } else {
        return;
      }
      await loadEvents();
      $("events").focus();
    } catch (e) {
      $("filter-error").textContent = explain(e);
    }
  }

  const FIELD_LABELS = [
    ["id", "Event id (issuance id)"], ["time", "Time"], ["outcome", "Outcome"], ["reason", "Reason"],
    ["issuer", "Issuer"], ["subject", "Subject"], ["auth_method", "Authenticated by"],
    ["client_ip", "Client IP"], ["user_agent", "User agent"], ["request_id", "Request id"],
    ["target", "Target"], ["kind", "Kind"], ["host", "Host"], ["port", "Port"], ["db_user", "DB user"],
    ["region", "Region"], ["role_arn", "Role"], ["session_name", "Role session"],
    ["cache", "Cache"], ["token_sha256", "Token SHA-256"], ["expires_at", "Token expires"],
    ["count", "Events coalesced"], ["chain_id", "Chain"], ["seq", "Position in chain"],
    ["prev_hash", "Previous hash"], ["hash", "Hash"],
  ];

  let opener = null;
  function showDetail(index) {
    const e = shown[index];
    if (!e) return;
    const items = [];
    for (const [key, label] of FIELD_LABELS) {
      const v = e[key];
      if (v === null || v === undefined || v === "") continue;
      items.push(h("dt", {}, label), h("dd", { "data-field": key }, v));
    }
    $("detail-fields").replaceChildren(...items);
    $("detail-title").textContent = `Audit event: ${e.outcome}`;
    opener = document.activeElement;
    $("detail").showModal();
    $("detail-close").focus();
    receiptStatus(e);
  }

  // Whether a signed checkpoint of the event's chain covers it yet (the newest, listed
  // first, has at least `seq` leaves), and then its receipt to download (docs/audit.md,
  // "Receipts and proofs").
  const receiptTurn = turns();
  async function receiptStatus(e) {
    const status = $("detail-receipt");
    const button = $("detail-receipt-download");
    button.hidden = true;
    status.textContent = "Receipt: checking…";
    try {
      const body = await unlessOvertaken(receiptTurn, async () =>
        (await api(`/v1/audit/checkpoints?${new URLSearchParams({ chain_id: e.chain_id })}`)).json());
      if (!body) return;
      const newest = body.checkpoints[0];
      if (!newest || newest.tree_size < e.seq) {
        status.textContent = "Receipt: not yet checkpointed (no signed checkpoint covers this event yet).";
        return;
      }
      status.textContent = `Receipt: covered by the signed checkpoint of size ${newest.tree_size}.`;
      button.dataset.id = e.id;
      button.hidden = false;
    } catch (err) {
      status.textContent = `Receipt: ${explain(err)}`;
    }
  }
  async function downloadReceipt() {
    const button = $("detail-receipt-download");
    button.disabled = true;
    try {
      const id = button.dataset.id;
      save(await api(`/v1/audit/receipts/${encodeURIComponent(id)}`), `receipt-${id}.json`);
    } catch (err) {
      $("detail-receipt").textContent = `Receipt: ${explain(err)}`;
    } finally {
      button.disabled = false;
    }
  }
  function closeDetail() {
    $("detail").close();
  }

  // ---- Downloads ------------------------------------------------------------------

  // Saves a response's body as a file named `name`.
  async function save(res, name) {
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function download(format) {
    const button = $(`download-${format}`);
    button.disabled = true;
    $("filter-error").textContent = "";
    try {
      const res = await api(`/v1/audit/events?${query({ format })}`);
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      await save(res, `audit-events-${stamp}.${format}`);
    } catch (e) {
      $("filter-error").textContent = explain(e);
    } finally {
      button.disabled = false;
    }
  }

  // ---- Chain badge ----------------------------------------------------------------

  async function verifyChain() {
    const badge = $("chain-badge");
    badge.className = "badge unknown";
    badge.textContent = "Checking the chain…";
    try {
      const v = await unlessOvertaken(chainTurn, async () => (await api("/v1/audit/verify")).json());
      if (!v) return;
      if (v.ok) {
        badge.className = "badge ok";
        badge.textContent = `Chain intact · ${v.events_checked.toLocaleString("en-US")} events`;
      } else {
        badge.className = "badge bad";
        const where = v.first_broken ? ` at ${v.first_broken.chain_id || ""} #${v.first_broken.seq ?? "?"}` : "";
        badge.textContent = `Chain broken${where}`;
      }
    } catch (e) {
      badge.className = "badge warn";
      badge.textContent = "Chain not checked";
      badge.title = explain(e);
    }
  }

  // ---- Charts ---------------------------------------------------------------------

  async function loadCharts() {
    const key = JSON.stringify(state.filters);
    if (state.statsFor === key) {
      chartsTurn(); // the charts drawn are current: an older answer on its way is not
      return;
    }
    const p = { ...state.filters };
    delete p.outcome;
    const st = await unlessOvertaken(chartsTurn, async () => (await api(`/v1/audit/stats?${new URLSearchParams(p)}`)).json());
    if (!st) return;
    state.statsFor = key;
    const C = window.Charts;
    $("charts-summary").textContent = `From ${st.since} to ${st.until}, in buckets of ${st.bucket_seconds / 60} minutes. ${C.fmt(st.totals.issued)} issued, ${C.fmt(st.totals.denied)} denied, ${C.fmt(st.totals.forbidden)} forbidden, ${C.fmt(st.totals.throttled)} throttled, ${C.fmt(st.totals.failed)} failed, ${C.fmt(st.totals.rejected || 0)} rejected; ${C.fmt(st.totals.audit_read || 0)} reads of the trail, ${C.fmt(st.totals.signed_in || 0)} console sign-ins.`;
    C.lineChart($("chart-issued"), {
      title: "Tokens issued per target", unit: "tokens issued", buckets: st.buckets, bucketSeconds: st.bucket_seconds,
      series: st.issued_by_target.map((t) => ({ name: t.target, values: t.counts, total: t.total })),
    });
    // Targets' kinds come with their budgets (every configured target); a target no longer
    // configured counts as "other".
    const kindOf = new Map(st.budgets.map((b) => [b.target, b.kind]));
    const byKind = new Map();
    for (const t of st.issued_by_target) {
      const kind = kindOf.get(t.target) || "other";
      const sum = byKind.get(kind) || { name: kind, values: st.buckets.map(() => 0), total: 0 };
      t.counts.forEach((n, i) => { sum.values[i] += n; });
      sum.total += t.total;
      byKind.set(kind, sum);
    }
    C.lineChart($("chart-kinds"), {
      title: "Tokens issued per kind", unit: "tokens issued", buckets: st.buckets, bucketSeconds: st.bucket_seconds,
      series: [...byKind.values()].sort((a, b) => a.name.localeCompare(b.name)),
    });
    C.stackedColumns($("chart-refused"), {
      title: "Denied and throttled requests", unit: "refused", buckets: st.buckets, bucketSeconds: st.bucket_seconds,
      series: ["denied", "forbidden", "throttled", "failed", "rejected"].map((o) => ({
        name: o, values: st.refused[o], total: st.totals[o], colour: C.REFUSAL_COLOURS[o],
      })),
    });
    C.bars($("chart-principals"), {
      title: "Top principals", totalText: "by tokens issued", valueLabel: "Tokens issued",
      rows: st.top_principals.map((p) => ({
        name: `${p.subject} (${p.issuer || "?"})`, value: p.issued,
        text: `${C.fmt(p.issued)} issued${p.refused ? `, ${C.fmt(p.refused)} refused` : ""}`,
      })),
    });
    C.bars($("chart-budgets"), {
      title: "Busiest second per target against its budget", totalText: "tokens minted per second; each row against its own max_connections_per_second (dashed)",
      valueLabel: "Peak minted per second", limitLabel: "Budget per second",
      rows: st.budgets.map((b) => ({
        name: b.target, value: b.peak_per_second, limit: b.max_connections_per_second,
        colour: b.peak_per_second > b.max_connections_per_second * 0.8 ? "#b3261e" : C.PALETTE[2],
        text: `${b.kind}: ${C.fmt(b.peak_per_second)}/s of ${C.fmt(b.max_connections_per_second)}/s (${C.fmt(b.minted)} minted, ${C.fmt(b.throttled)} throttled)`,
      })),
    });
  }

  // ---- Access requests ------------------------------------------------------------
  // Pending requests the signed-in identity may review (approve or deny, with a comment),
  // active and pending ones (revocable), and past ones. Break-glass rows are highlighted.

  const accessTurn = turns();
  const when = (t) => (t ? t.replace("T", " ").replace("Z", "") : "–");
  const requester = (r) => `${r.requester.subject} (${r.requester.issuer})`;
  const what = (r) => `the request of ${r.requester.subject} for ${r.target} as ${r.db_user}`;
  const isOpen = (r) => r.state === "pending" || r.state === "approved";

  function stateCell(r) {
    const cell = h("td", {}, h("span", { class: `badge s-${r.state}` }, r.state));
    if (r.break_glass) cell.append(" ", h("span", { class: "badge bg" }, "Break-glass"));
    return cell;
  }

  function accessTable(id, requests, row, none) {
    const rows = requests.map((r) => {
      const tr = row(r);
      tr.dataset.id = r.id;
      if (r.break_glass) tr.classList.add("break-glass");
      return tr;
    });
    if (!rows.length) rows.push(h("tr", { class: "empty" }, h("td", { colspan: 8 }, none)));
    $(id).tBodies[0].replaceChildren(...rows);
  }

  async function loadAccess() {
    const lists = await unlessOvertaken(accessTurn, () => Promise.all(
      ["to_review=true&limit=200", "limit=200"].map(async (q) => (await api(`/v1/access-requests?${q}`)).json()),
    ));
    if (!lists) return;
    const [review, all] = lists.map((l) => l.requests);
    const reviewing = new Set(review.map((r) => r.id));
    const open = all.filter((r) => isOpen(r) && !reviewing.has(r.id));
    const past = all.filter((r) => !isOpen(r));
    $("access-summary").textContent = `${review.length} waiting for your review, ${open.length} active or pending, ${past.length} past${lists[1].next_cursor ? " (the newest 200)" : ""}.`;
    accessTable("access-review", review, (r) => h("tr", {},
      h("td", { class: "time" }, when(r.created_at)),
      h("td", {}, requester(r)),
      h("td", {}, r.target),
      h("td", {}, r.db_user),
      h("td", { class: "num" }, r.duration_minutes),
      h("td", {}, r.reason || "–"),
      h("td", {}, `${r.approvals.length} of ${r.min_approvals}`),
      h("td", {}, h("div", { class: "decide" },
        h("input", { type: "text", maxlength: 500, autocomplete: "off", placeholder: "Comment (optional)", "data-comment": r.id, "aria-label": `Comment on ${what(r)}` }),
        h("button", { type: "button", class: "primary", "data-act": "approve", "aria-label": `Approve ${what(r)}` }, "Approve"),
        h("button", { type: "button", "data-act": "deny", "aria-label": `Deny ${what(r)}` }, "Deny"))),
    ), "Nothing waits for your review.");
    accessTable("access-open", open, (r) => h("tr", {},
      stateCell(r),
      h("td", {}, requester(r)),
      h("td", {}, r.target),
      h("td", {}, r.db_user),
      h("td", {}, r.reason || "–"),
      h("td", {}, r.break_glass ? "themselves (break-glass)" : r.approvals.map((a) => a.subject).join(", ") || "–"),
      h("td", { class: "time" }, r.state === "approved" ? when(r.expires_at) : `pending (${r.duration_minutes} min)`),
      h("td", {}, h("button", { type: "button", "data-act": "revoke", "aria-label": `Revoke ${what(r)}` }, "Revoke")),
    ), "No active or pending requests.");
    accessTable("access-past", past, (r) => h("tr", {},
      stateCell(r),
      h("td", {}, requester(r)),
      h("td", {}, r.target),
      h("td", {}, r.db_user),
      h("td", {}, r.reason || "–"),
      h("td", { class: "time" }, when(r.decided_at)),
      h("td", {}, r.decided_by || "–"),
      h("td", {}, r.decision_comment || "–"),
    ), "No past requests.");
  }

  // Approve, deny or revoke: the answer is announced, the tables reloaded, and focus put
  // back on the panel (the row acted on has moved).
  async function decide(button) {
    const id = button.closest("tr").dataset.id;
    const act = button.dataset.act;
    const input = button.closest("tr").querySelector("input[data-comment]");
    const comment = input ? input.value.trim() : "";
    button.disabled = true;
    $("access-error").textContent = "";
    try {
      const res = await api(`/v1/access-requests/${encodeURIComponent(id)}/${act}`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(comment ? { comment } : {}),
      });
      const body = await res.json();
      const r = body.request || body;
      await loadAccess();
      const done = { approve: "Approved", deny: "Denied", revoke: "Revoked" }[act];
      $("access-summary").textContent = `${done} ${what(r)}: now ${r.state}. ${$("access-summary").textContent}`;
      $("panel-access").focus();
    } catch (e) {
      button.disabled = false;
      $("access-error").textContent = e.message;
    }
  }

  // ---- Tabs -----------------------------------------------------------------------

  const TABS = ["events", "charts", "access"];

  function showTab(name) {
    for (const t of TABS) {
      const on = t === name;
      $(`tab-${t}`).setAttribute("aria-selected", String(on));
      $(`tab-${t}`).tabIndex = on ? 0 : -1;
      $(`panel-${t}`).hidden = !on;
    }
    // The filters are the trail's: access requests have none.
    $("filters").hidden = name === "access";
    if (name === "charts") {
      loadCharts().catch((e) => { $("charts-summary").textContent = explain(e); });
    }
    if (name === "access") {
      $("access-error").textContent = "";
      loadAccess().catch((e) => { $("access-error").textContent = e.message; });
    }
  }

  function tabKeys(event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const i = TABS.indexOf(event.target.id.slice("tab-".length));
    const next = TABS[(i + (event.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
    showTab(next);
    $(`tab-${next}`).focus();
    event.preventDefault();
  }

  // ---- Start ----------------------------------------------------------------------

  async function start() {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) {
        $("sign-in-error").textContent = "Paste a bearer token first.";
        $("token-input").focus();
        return;
      }
      $("sign-in-error").textContent = "";
      signIn(token, false).catch((err) => showSignIn(explain(err)));
    });
    $("sso-button").addEventListener("click", () => startSso().catch((e) => showSignIn(e.message)));
    $("anonymous").addEventListener("click", () => signIn(null, true).catch((e) => showSignIn(explain(e))));
    $("sign-out").addEventListener("click", signOut);
    $("chain-badge").addEventListener("click", verifyChain);
    $("filters").addEventListener("submit", applyFilters);
    $("filters").addEventListener("reset", () => {
      setTimeout(() => {
        $("f-range").value = "86400";
        setRange(86400);
        $("filters").requestSubmit();
      });
    });
    $("f-range").addEventListener("change", () => {
      if ($("f-range").value !== "custom") setRange(Number($("f-range").value));
    });
    for (const id of ["f-since", "f-until"]) {
      $(id).addEventListener("input", () => { $("f-range").value = "custom"; });
    }
    $("page-size").addEventListener("change", () => {
      state.cursors = [null];
      state.page = 0;
      loadEvents().catch((e) => { $("filter-error").textContent = explain(e); });
    });
    $("prev").addEventListener("click", () => page(-1));
    $("next").addEventListener("click", () => page(1));
    $("events").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-index]");
      if (b) showDetail(Number(b.dataset.index));
    });
    $("detail-close").addEventListener("click", closeDetail);
    $("detail-receipt-download").addEventListener("click", downloadReceipt);
    $("detail").addEventListener("close", () => { if (opener) opener.focus(); });
    $("download-csv").addEventListener("click", () => download("csv"));
    $("download-ndjson").addEventListener("click", () => download("ndjson"));
    $("access-refresh").addEventListener("click", () => {
      $("access-error").textContent = "";
      loadAccess().catch((e) => { $("access-error").textContent = e.message; });
    });
    $("panel-access").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-act]");
      if (b) decide(b);
    });
    for (const t of TABS) {
      $(`tab-${t}`).addEventListener("click", () => showTab(t));
      $(`tab-${t}`).addEventListener("keydown", tabKeys);
    }

    try {
      state.config = await (await api("/ui/config")).json();
    } catch (e) {
      state.config = { oidc: null, unauthenticated: false };
    }
    const params = new URLSearchParams(location.search);
    try {
      if (params.has("code") || params.has("error")) {
        await signIn(await finishSso(params), false);
        return;
      }
      const saved = sessionStorage.getItem(TOKEN_KEY);
      if (saved) {
        await signIn(saved, false);
        return;
      }
    } catch (e) {
      showSignIn(e instanceof ApiError ? explain(e) : e.message);
      return;
    }
    showSignIn("");
  }

  document.addEventListener("DOMContentLoaded", () => { start(); });
})();
