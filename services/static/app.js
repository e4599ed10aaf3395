// PriorSight examiner page: plain JS over the /v1 JSON API (no build step).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { queries: [], response: null, maxImages: 7 };  // queries: {file, url, crop}

  fetch("/v1/info").then((r) => r.json()).then((info) => {
    state.maxImages = info.limits.max_images;
    $("max-images").textContent = info.limits.max_images;
    $("k").max = info.limits.max_k;
    $("k").value = info.limits.default_k;
    $("fusion").value = info.fusion;
    $("model-info").textContent = `model ${info.model.name} · ${info.model.version}`;
  }).catch(() => {});

  // -- query drawings ----------------------------------------------------------------------
  function addFiles(files) {
    for (const file of files) {
      if (state.queries.length >= state.maxImages) { setStatus(`At most ${state.maxImages} drawings per search.`, true); break; }
      state.queries.push({ file, url: URL.createObjectURL(file), crop: null });
    }
    renderThumbs();
  }
  function renderThumbs() {
    const ul = $("thumbs");
    ul.replaceChildren();
    state.queries.forEach((q, i) => {
      const li = document.createElement("li");
      const img = document.createElement("img");
      img.src = q.url; img.alt = q.file.name;
      const crop = button(q.crop ? "cropped ✓" : "crop", () => openCropper(i));
      const del = button("remove", () => { URL.revokeObjectURL(q.url); state.queries.splice(i, 1); renderThumbs(); });
      li.append(img, document.createElement("br"), crop, del);
      ul.append(li);
    });
  }
  function button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label; b.addEventListener("click", onClick);
    return b;
  }
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => addFiles(e.dataTransfer.files));
  $("files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });

  // -- crop --------------------------------------------------------------------------------
  let cropIndex = -1, start = null, box = null;
  function openCropper(i) {
    cropIndex = i; box = state.queries[i].crop; $("crop-img").src = state.queries[i].url;
    $("cropper").hidden = false; drawBox();
  }
  function rel(e) {
    const r = $("crop-img").getBoundingClientRect();
    return { x: Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1), y: Math.min(Math.max((e.clientY - r.top) / r.height, 0), 1) };
  }
  function drawBox() {
    const el = $("crop-box");
    if (!box) { el.style.display = "none"; return; }
    Object.assign(el.style, { display: "block", left: `${box.x0 * 100}%`, top: `${box.y0 * 100}%`,
      width: `${(box.x1 - box.x0) * 100}%`, height: `${(box.y1 - box.y0) * 100}%` });
  }
  $("crop-stage").addEventListener("mousedown", (e) => { e.preventDefault(); start = rel(e); });
  window.addEventListener("mousemove", (e) => {
    if (!start) return;
    const p = rel(e);
    box = { x0: Math.min(start.x, p.x), y0: Math.min(start.y, p.y), x1: Math.max(start.x, p.x), y1: Math.max(start.y, p.y) };
    drawBox();
  });
  window.addEventListener("mouseup", () => { start = null; });
  $("crop-clear").addEventListener("click", () => { box = null; drawBox(); });
  $("crop-done").addEventListener("click", () => {
    const ok = box && box.x1 - box.x0 > 0.02 && box.y1 - box.y0 > 0.02;
    state.queries[cropIndex].crop = ok ? box : null;
    $("cropper").hidden = true; renderThumbs();
  });

  // -- search ------------------------------------------------------------------------------
  function setStatus(msg, isError) { const s = $("status"); s.textContent = msg; s.className = isError ? "error" : ""; }
  function filters() {
    const f = {};
    const classes = $("locarno").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (classes.length) f.locarno_classes = classes;
    const us = $("usclass").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (us.length) f.us_classes = us;
    if ($("date-from").value) f.date_from = $("date-from").value;
    if ($("date-to").value) f.date_to = $("date-to").value;
    return f;
  }
  async function search() {
    const text = $("text").value.trim();
    if (!state.queries.length && !text) { setStatus("Add a drawing or some words first.", true); return; }
    const form = new FormData();
    state.queries.forEach((q) => form.append("images", q.file, q.file.name));
    if (text) form.append("text", text);
    form.append("crops", JSON.stringify(state.queries.map((q) => q.crop)));
    form.append("filters", JSON.stringify(filters()));
    form.append("k", $("k").value || "20");
    form.append("fusion", $("fusion").value);
    form.append("group_by_patent", $("group").checked ? "true" : "false");
    setStatus("Searching…");
    $("search").disabled = true;
    try {
      const r = await fetch("/v1/search", { method: "POST", body: form });
      const body = await r.json();
      if (!r.ok) { setStatus(body.error ? `${body.error.message}` : `error ${r.status}`, true); return; }
      state.response = body;
      render(body);
      setStatus("");
    } catch (e) {
      setStatus(`Search failed: ${e}`, true);
    } finally { $("search").disabled = false; }
  }
  $("search").addEventListener("click", search);

  function render(res) {
    const grid = $("grid");
    grid.replaceChildren();
    const groups = res.results.length ? res.results : res.drawings.map((d) => ({
      patent_id: d.patent_id, score: d.score, title: "", drawings: [d] }));
    for (const p of groups) {
      const card = document.createElement("article");
      card.className = "patent-card"; card.dataset.patent = p.patent_id;
      const views = document.createElement("div"); views.className = "views";
      for (const d of p.drawings.slice(0, 3)) {
        const img = document.createElement("img"); img.src = d.image_url; img.alt = d.drawing_id; img.loading = "lazy";
        views.append(img);
      }
      const h = document.createElement("h3"); h.textContent = p.title || p.patent_id;
      const meta = document.createElement("div"); meta.className = "meta";
      meta.innerHTML = "";
      const score = document.createElement("span"); score.className = "score"; score.textContent = p.score.toFixed(3);
      meta.append(score, document.createTextNode(
        `${p.patent_id} · ${p.locarno_class || p.us_class || "–"} · ${p.grant_date || "–"} · ${p.drawings.length} view(s)`));
      card.append(views, h, meta);
      card.addEventListener("click", () => showPatent(p.patent_id));
      grid.append(card);
    }
    const partial = res.partial ? ` — partial: ${res.failed_sources.map((f) => f.source).join(", ")} did not answer` : "";
    $("summary").innerHTML = "";
    $("summary").append(document.createTextNode(`${groups.length} result(s) in ${res.record.latency_ms} ms`));
    if (partial) { const s = document.createElement("span"); s.className = "partial"; s.textContent = partial; $("summary").append(s); }
    $("record").textContent = JSON.stringify(res.record, null, 2);
    ["export-csv", "export-json", "save-record"].forEach((id) => { $(id).disabled = false; });
    try {
      const history = JSON.parse(localStorage.getItem("priorsight-records") || "[]");
      history.push(res.record);
      localStorage.setItem("priorsight-records", JSON.stringify(history.slice(-50)));
    } catch (e) { /* storage full or disabled */ }
  }

  async function showPatent(id) {
    const r = await fetch(`/v1/patents/${encodeURIComponent(id)}`);
    const body = $("detail-body");
    body.replaceChildren();
    if (!r.ok) { body.textContent = `No details for ${id}.`; $("detail").hidden = false; return; }
    const p = await r.json();
    const h = document.createElement("h2"); h.textContent = `${p.patent_id} — ${p.title}`;
    const meta = document.createElement("p"); meta.className = "meta";
    meta.textContent = `Locarno ${p.locarno_class || "–"} · US ${p.us_class || "–"} · granted ${p.grant_date || "–"} · source ${p.source || "–"}`;
    const views = document.createElement("div"); views.className = "views";
    for (const d of p.drawings) {
      const fig = document.createElement("figure");
      const img = document.createElement("img"); img.src = d.image_url; img.alt = d.drawing_id;
      const cap = document.createElement("figcaption"); cap.className = "meta";
      cap.textContent = `${d.figure_label || d.drawing_id} · ${d.view || ""} ${d.figure_description || ""}`;
      fig.append(img, cap); views.append(fig);
    }
    body.append(h, meta, views);
    $("detail").hidden = false;
  }
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("detail").addEventListener("click", (e) => { if (e.target.id === "detail") $("detail").hidden = true; });

  // -- export ------------------------------------------------------------------------------
  function download(name, type, text) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = name; document.body.append(a); a.click(); a.remove();
  }
  function rows() {
    const res = state.response;
    if (res.results.length) {
      return res.results.flatMap((p, i) => p.drawings.map((d) => ({ rank: i + 1, patent_id: p.patent_id, title: p.title,
        locarno_class: p.locarno_class || "", us_class: p.us_class || "", grant_date: p.grant_date || "", patent_score: p.score,
        drawing_id: d.drawing_id, view: d.view || "", drawing_score: d.score })));
    }
    return res.drawings.map((d, i) => ({ rank: i + 1, patent_id: d.patent_id, drawing_id: d.drawing_id, view: d.view || "", drawing_score: d.score }));
  }
  function csv(data) {
    if (!data.length) return "";
    const cols = Object.keys(data[0]);
    const cell = (v) => { const s = String(v ?? ""); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
    return [cols.join(","), ...data.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\n") + "\n";
  }
  const stamp = () => state.response.record.query_id.slice(0, 8);
  $("export-csv").addEventListener("click", () => download(`priorsight-${stamp()}.csv`, "text/csv", csv(rows())));
  $("export-json").addEventListener("click", () => download(`priorsight-${stamp()}.json`, "application/json",
    JSON.stringify({ record: state.response.record, results: state.response.results, drawings: state.response.drawings }, null, 2)));
  $("save-record").addEventListener("click", () => download(`priorsight-search-record-${stamp()}.json`, "application/json",
    JSON.stringify(state.response.record, null, 2)));
})();
