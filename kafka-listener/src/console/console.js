// The operator console's script: the token (sessionStorage), the actions
// (POST with Authorization: Bearer), and the live table and charts
// (GET api/history, then Server-Sent Events from api/events, or a
// listener's api/listeners/{id}/events). No library.
(function () {
  "use strict";
  const body = document.body;
  const base = body.dataset.base;
  const readOnly = body.dataset.readOnly === "true";
  const KEY = "kafka-listener-console-token";
  const token = () => sessionStorage.getItem(KEY);
  const status = (text) => { document.getElementById("status").textContent = text; };

  function enable() {
    document.querySelectorAll("button[data-post]").forEach((b) => { b.disabled = readOnly || !token(); });
    const state = document.getElementById("token-state");
    if (state) state.textContent = token() ? "token set for this tab" : "enter the token to enable actions";
  }

  const form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(KEY, form.elements.token.value);
      form.elements.token.value = "";
      enable();
    });
  }

  function bodyOf(button) {
    if (button.dataset.selection) {
      const ids = Array.from(document.querySelectorAll("input[name=sel]:checked")).map((c) => c.value);
      return { ids: ids, rate: parseFloat(document.getElementById("rate").value) };
    }
    if (button.dataset.form) {
      const f = document.getElementById(button.dataset.form);
      const out = {};
      new FormData(f).forEach((v, k) => { if (v !== "") out[k] = (k === "partition" || k === "value") ? Number(v) : v; });
      return out;
    }
    return {};
  }

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-post]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const r = await fetch(base + "/" + button.dataset.post, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
        body: JSON.stringify(bodyOf(button)),
      });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(answer.error || ("HTTP " + r.status));
      status("done: " + JSON.stringify(answer));
      setTimeout(() => {
        if (button.dataset.after) location.href = base + button.dataset.after;
        else location.reload();
      }, 400);
    } catch (err) {
      status("refused: " + err.message);
      enable();
    }
  });

  document.querySelectorAll("time[data-ms]").forEach((t) => {
    t.textContent = new Date(Number(t.dataset.ms)).toLocaleString();
  });

  // Live charts: the last 15 minutes of samples, redrawn on each event.
  let samples = [];
  let keep = 180;
  function draw(id, field) {
    const svg = document.getElementById(id);
    if (!svg || samples.length === 0) return;
    const values = samples.map((s) => s[field]);
    const max = Math.max(1, ...values);
    const step = 300 / Math.max(1, keep - 1);
    const x0 = 300 - step * (values.length - 1);
    const points = values.map((v, i) => (x0 + i * step).toFixed(1) + "," + (75 - (v / max) * 65).toFixed(1)).join(" ");
    svg.innerHTML = '<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="' + points + '"></polyline>' +
      '<text x="2" y="10" font-size="9">max ' + max + "</text>" +
      '<text x="2" y="78" font-size="9">now ' + values[values.length - 1] + "</text>";
  }
  function redraw() { draw("chart-rate", "records_per_second"); draw("chart-lag", "lag"); }

  // Puts `values[field]` into each `td[data-field]` of `row` (into its
  // link when it has one); `–` for none (or, for offsets, below 0).
  function fill(row, values, offsets) {
    row.querySelectorAll("td[data-field]").forEach((td) => {
      const v = values[td.dataset.field];
      const none = v === null || v === undefined || (offsets && typeof v === "number" && v < 0);
      (td.querySelector("a") || td).textContent = none ? "–" : v;
    });
  }

  // Takes the chart history from `api/history[?listener=id]`, then one
  // sample per event of `stream`; `each` gets every event's data.
  function live(query, stream, each) {
    fetch(base + "/api/history" + query).then((r) => r.json()).then((h) => {
      keep = Math.max(2, Math.round(900000 / h.interval_ms));
      samples = h.samples;
      redraw();
    });
    const events = new EventSource(base + stream);
    events.addEventListener("update", (e) => {
      const d = JSON.parse(e.data);
      if (d.sample && (samples.length === 0 || samples[samples.length - 1].at !== d.sample.at)) {
        samples.push(d.sample);
        while (samples.length > keep) samples.shift();
        redraw();
      }
      each(d);
    });
  }

  // The listeners: the app's charts, the table from the app's stream.
  const table = document.getElementById("listeners");
  if (table) {
    live("", "/api/events", (d) => {
      d.listeners.forEach((l) => {
        const row = Array.from(table.querySelectorAll("tr[data-listener]")).find((r) => r.dataset.listener === l.id);
        if (row) fill(row, l);
      });
    });
  }

  // A listener: its charts, its partitions from its own stream (1/s).
  const partitions = document.getElementById("partitions");
  if (partitions) {
    const id = encodeURIComponent(partitions.dataset.listener);
    live("?listener=" + id, "/api/listeners/" + id + "/events", (d) => {
      const rows = Array.from(partitions.querySelectorAll("tr[data-partition]"));
      d.partitions.forEach((p) => {
        const row = rows.find((x) => x.dataset.topic === p.topic && Number(x.dataset.partition) === p.partition);
        if (row) fill(row, p, true);
      });
    });
  }
  enable();
})();
