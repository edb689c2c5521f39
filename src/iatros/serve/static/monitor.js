// Live monitoring pages (/monitor, /monitor/patients/ID): keeps the ward rows up to date from
// the events WebSocket (/api/v1/monitor/events, authenticated by the session cookie), shows
// whether the page is live, reconnects with back-off and, on every (re)connection, catches up
// from the JSON API so nothing missed while disconnected stays on screen. Data only ever goes
// in as text (textContent, attributes): no HTML is built from what the server sends.
(function () {
  "use strict";
  const root = document.querySelector("[data-live]");
  if (!root) return;
  const only = root.dataset.only || null;          // the patient page follows one patient
  const back = root.dataset.back || "/monitor";
  const status = document.getElementById("live");
  const banner = document.getElementById("new-alerts");
  const reloadNotice = document.getElementById("reload-notice");
  const title = document.title;
  const MAX_DELAY_S = 30;
  const RANK = {"low-medium": 1, "medium": 2, "high": 3};
  let delay = 1;

  function utc(t) {
    return t == null ? "" : new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ");
  }

  function shown(name, v) {
    if (v == null) return "–";
    if (name === "on_oxygen") return v ? "O2" : "air";
    if (name === "temperature" && typeof v === "number") return v.toFixed(1);
    return String(v);
  }

  function setStatus(state, text) {
    status.className = "live " + state;
    status.textContent = text;
  }

  function field(el, name) {
    return el.querySelector('[data-field="' + name + '"]');
  }

  function rowOf(pid) {
    for (const row of root.querySelectorAll("tr[data-patient]")) {
      if (row.dataset.patient === pid) return row;
    }
    const template = document.getElementById("ward-row");
    if (only || !template) return null;
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.patient = pid;
    const link = field(row, "patient");
    link.textContent = pid;
    link.href = "/monitor/patients/" + encodeURIComponent(pid);
    const body = document.getElementById("ward-rows");
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    body.appendChild(row);
    return row;
  }

  function setRowAlert(row, severity) {
    row.className = row.className.replace(/\b(alerting|sev-[a-z-]+)\b/g, "").trim();
    if (severity) row.classList.add("alerting", "sev-" + severity);
  }

  function flash(el) {
    el.classList.remove("fresh");
    void el.offsetWidth;            // restart the animation
    el.classList.add("fresh");
  }

  function touched() {
    if (reloadNotice) {
      reloadNotice.querySelector("a").href = location.pathname + location.search;
      reloadNotice.hidden = false;
    }
  }

  function reading(ev, quiet) {
    const row = rowOf(ev.patient_id);
    if (!row) return;
    for (const [name, value] of Object.entries(ev.values || {})) {
      const cell = field(row, name);
      if (cell) cell.textContent = shown(name, value);
    }
    if (ev.time != null) field(row, "time").textContent = utc(ev.time);
    if (ev.ward) field(row, "ward").textContent = ev.ward;
    const n = ev.news2;
    if (n) {
      const score = field(row, "news2");
      score.textContent = String(n.score);
      score.className = "news2 risk-" + n.risk;
      score.title = n.summary || "";
      field(row, "risk").textContent = n.risk;
      field(row, "incomplete").hidden = !!n.complete;
    }
    if (only && !quiet) touched();
  }

  // the banner of alerts that arrived while this page was open, until acknowledged
  function announce(ev, words) {
    if (!banner) return;
    let line = banner.querySelector('[data-alert="' + ev.id + '"]');
    if (!line) {
      line = document.createElement("p");
      line.dataset.alert = String(ev.id);
      banner.appendChild(line);
    }
    line.className = "sev-" + ev.severity;
    const what = ev.kind && ev.kind !== "news2" ? ev.kind : "NEWS2 " + ev.score;
    line.textContent = words + ": patient " + ev.patient_id + ", " + ev.severity +
      " (" + what + "), " + (ev.level_name || "") + ".";
    banner.hidden = false;
    flash(line);
    counted();
  }

  function forget(id) {
    if (!banner) return;
    const line = banner.querySelector('[data-alert="' + id + '"]');
    if (line) line.remove();
    banner.hidden = !banner.children.length;
    counted();
  }

  function counted() {
    const n = banner ? banner.children.length : 0;
    document.title = n ? "(" + n + ") " + title : title;
  }

  // a row's alert cell holds one block per open alert (NEWS2, rhythm, models), most severe first
  function blocks(cell) {
    return Array.from(cell.querySelectorAll(".alert[data-alert]"));
  }

  function sortCell(row, cell) {
    const shown = blocks(cell);
    shown.sort((a, b) => (RANK[b.dataset.severity] || 0) - (RANK[a.dataset.severity] || 0) ||
                         Number(a.dataset.alert) - Number(b.dataset.alert));
    for (const block of shown) cell.appendChild(block);
    cell.dataset.alertId = shown.map((b) => b.dataset.alert).join(" ");
    setRowAlert(row, shown.length ? shown[0].dataset.severity : null);
  }

  function showAlert(ev, words) {
    const row = rowOf(ev.patient_id);
    if (!row) return;
    const cell = field(row, "alert");
    const old = blocks(cell).find((b) => b.dataset.alert === String(ev.id)) ||
                blocks(cell).find((b) => b.dataset.kind === ev.kind);
    const same = !!old && old.dataset.alert === String(ev.id);
    const block = document.getElementById("alert-block").content.firstElementChild.cloneNode(true);
    block.classList.add("sev-" + ev.severity);
    block.dataset.alert = String(ev.id);
    block.dataset.kind = ev.kind || "news2";
    block.dataset.severity = ev.severity;
    block.querySelector('[data-part="severity"]').textContent = ev.severity;
    const kind = block.querySelector('[data-part="kind"]');
    kind.textContent = ev.kind || "";
    kind.hidden = !ev.kind || ev.kind === "news2";
    block.querySelector('[data-part="level"]').textContent = ev.level_name || "";
    block.querySelector('[data-part="opened"]').textContent = "opened " + utc(ev.opened).slice(11) + " UTC";
    block.querySelector('[data-part="reason"]').textContent = ev.reason;
    const form = block.querySelector("form");
    form.action = "/monitor/alerts/" + encodeURIComponent(ev.id) + "/ack";
    form.querySelector('input[name="back"]').value = back;
    if (old) {
      old.replaceWith(block);
    } else {
      for (const child of Array.from(cell.children)) {
        if (!child.matches(".alert[data-alert]")) child.remove();   // "none", "acknowledged"
      }
      cell.appendChild(block);
    }
    sortCell(row, cell);
    if (words) {
      flash(row);
      announce(ev, words);
    } else if (!same) {
      flash(row);
    }
    touched();
  }

  function acked(ev) {
    forget(ev.id);
    const row = rowOf(ev.patient_id);
    if (!row) return;
    const cell = field(row, "alert");
    const block = blocks(cell).find((b) => b.dataset.alert === String(ev.id));
    if (!block) return;
    block.remove();
    if (!blocks(cell).length) {
      const done = document.createElement("span");
      done.className = "acked";
      done.textContent = ev.acked_by
        ? "acknowledged by " + ev.acked_by + " at " + utc(ev.acked).slice(11) + " UTC"
        : "acknowledged";
      cell.replaceChildren(done);
    }
    sortCell(row, cell);
    touched();
  }

  function handle(ev) {
    if (!ev || (only && ev.patient_id !== only)) return;
    if (ev.type === "reading") reading(ev);
    else if (ev.type === "alert") showAlert(ev, ev.update ? "Alert raised" : "New alert");
    else if (ev.type === "escalation") showAlert(ev, "Escalated");
    else if (ev.type === "ack") acked(ev);
  }

  async function getJSON(path) {
    const r = await fetch(path, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  // what changed while there was no socket: the ward and the open alerts, from the JSON API
  async function catchUp() {
    try {
      const [ward, open] = await Promise.all([getJSON("/api/v1/monitor/ward"),
                                              getJSON("/api/v1/monitor/alerts")]);
      const byPatient = new Map();
      for (const a of open) {
        if (!byPatient.has(a.patient_id)) byPatient.set(a.patient_id, []);
        byPatient.get(a.patient_id).push(a);
      }
      const admitted = new Set(ward.map((p) => p.patient_id));
      for (const p of ward) {
        if (only && p.patient_id !== only) continue;
        reading({patient_id: p.patient_id, ward: p.ward, time: p.latest, values: p.values,
                 news2: p.news2}, true);
        const row = rowOf(p.patient_id);
        if (!row) continue;
        const alerts = byPatient.get(p.patient_id) || [];
        const ids = new Set(alerts.map((a) => String(a.id)));
        for (const block of blocks(field(row, "alert"))) {
          if (!ids.has(block.dataset.alert)) {
            acked({id: Number(block.dataset.alert), patient_id: p.patient_id});
          }
        }
        const shown = new Map(blocks(field(row, "alert")).map((b) => [b.dataset.alert, b]));
        for (const a of alerts) {
          const block = shown.get(String(a.id));
          if (!block) showAlert(a, "New alert");
          else if (block.dataset.severity !== a.severity) showAlert(a, "Alert raised");
        }
      }
      if (!only) {                  // discharged while this page was open
        for (const row of root.querySelectorAll("tr[data-patient]")) {
          if (!admitted.has(row.dataset.patient)) row.remove();
        }
      }
    } catch (e) {
      // the socket's own state is what the indicator shows; the next reconnection tries again
    }
  }

  function connect() {
    setStatus("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(scheme + "//" + location.host + "/api/v1/monitor/events");
    } catch (e) {
      retry();
      return;
    }
    socket.onopen = function () {
      delay = 1;
      setStatus("on", "live");
      catchUp();
    };
    socket.onmessage = function (message) {
      let ev;
      try {
        ev = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      handle(ev);
    };
    socket.onclose = retry;
  }

  function retry() {
    const wait = delay;
    delay = Math.min(MAX_DELAY_S, delay * 2);
    setStatus("off", "disconnected: retrying in " + wait + " s");
    setTimeout(connect, wait * 1000 * (0.8 + 0.4 * Math.random()));
  }

  connect();
})();
