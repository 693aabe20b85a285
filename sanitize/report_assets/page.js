"use strict";
// The table is drawn from the embedded JSON a page at a time: filtering and searching work on
// arrays, so 10,000 rows cost no more DOM than 100.
(function () {
  const PAGE_SIZE = 100;
  // Row layout, as written by sanitize/report_page.py (_data_json).
  const PATH = 0, TYPE = 1, ERROR = 2, BYTES = 3, ARCHIVE = 5, ENTRY = 6, STATUS = 7,
    REASON = 8, THUMB = 9, GLYPH = 10, DECODED = 11, NOTE = 12;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const rows = data.rows;
  const haystack = rows.map((r) => (r[PATH] + " " + (r[ARCHIVE] || "")).toLowerCase());
  const state = { type: -1, terms: [], page: 0, sort: null, desc: false };
  let view = [];

  const $ = (id) => document.getElementById(id);
  const typeSelect = $("type-filter"), search = $("search"), tbody = $("rows");

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);

  function size(n) {
    if (n === null || n === undefined) return "\u2013";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + "\u00a0" + units[i];
  }

  const COLUMNS = [
    ["thumb", "What still decodes", "decoded"],
    ["path", "Path", "path"],
    ["type", "Type", "type"],
    ["msg", "Message", null],
    ["num", "Size", "bytes"],
  ].concat(data.plan ? [["archive", "Archive that can repair it", "archive"]] : []);

  const SORT_KEYS = {
    path: (r) => r[PATH],
    type: (r) => r[TYPE],
    bytes: (r) => (r[BYTES] === null ? -1 : r[BYTES]),
    decoded: (r) => (r[DECODED] === null ? 2 : r[DECODED]),
    archive: (r) => r[ARCHIVE] || "\uffff",
  };

  function thumbCell(r) {
    let html;
    if (r[THUMB] >= 0) {
      html = '<img alt="" src="' + data.thumbs[r[THUMB]] + '">';
    } else {
      html = '<div class="glyph">' + esc(r[GLYPH] || "no thumbnail") + "</div>";
    }
    if (r[DECODED] !== null) {
      html += '<div class="decoded"><b>' + Math.floor(r[DECODED] * 100) + "%</b> of rows decode</div>";
    }
    return html;
  }

  function pathCell(r) {
    const p = r[PATH], cut = p.lastIndexOf("/") + 1;
    // <wbr> after each slash: long paths wrap between folders, not inside names.
    let html = '<span class="dir">' + esc(p.slice(0, cut)).replace(/\//g, "/<wbr>") +
      '</span><span class="name">' + esc(p.slice(cut)) + "</span>";
    if (r[NOTE]) html += '<div class="note">' + esc(r[NOTE]) + "</div>";
    return html;
  }

  function archiveCell(r) {
    if (!r[ARCHIVE] && !r[STATUS]) return '<span class="status">not in the plan</span>';
    let html = "";
    if (r[ARCHIVE]) {
      const name = r[ARCHIVE].slice(r[ARCHIVE].lastIndexOf("/") + 1);
      const title = r[ARCHIVE] + (r[ENTRY] ? " \u2192 " + r[ENTRY] : "");
      html += '<div title="' + esc(title) + '">' + esc(name) + "</div>";
    }
    if (r[STATUS]) {
      html += '<span class="status ' + esc(r[STATUS]) + '" title="' + esc(r[REASON] || "") + '">' +
        esc(r[STATUS].replace(/_/g, " ")) + "</span>";
    }
    return html;
  }

  function rowHtml(i) {
    const r = rows[i], type = data.types[r[TYPE]];
    let html = '<tr data-row="' + i + '" data-type="' + esc(type) + '">' +
      '<td class="thumb">' + thumbCell(r) + "</td>" +
      '<td class="path">' + pathCell(r) + "</td>" +
      '<td class="type"><span class="badge" style="--c:' + data.colours[r[TYPE]] + '">' + esc(type) + "</span></td>" +
      '<td class="msg">' + esc(r[ERROR]) + "</td>" +
      '<td class="num">' + size(r[BYTES]) + "</td>";
    if (data.plan) html += '<td class="archive">' + archiveCell(r) + "</td>";
    return html + "</tr>";
  }

  function applyFilter() {
    view = [];
    for (let i = 0; i < rows.length; i++) {
      if (state.type >= 0 && rows[i][TYPE] !== state.type) continue;
      const h = haystack[i];
      if (state.terms.every((t) => h.includes(t))) view.push(i);
    }
    if (state.sort) {
      const key = SORT_KEYS[state.sort], sign = state.desc ? -1 : 1;
      view.sort((a, b) => {
        const ka = key(rows[a]), kb = key(rows[b]);
        return (ka < kb ? -1 : ka > kb ? 1 : a - b) * sign;
      });
    }
    state.page = 0;
    render();
  }

  function render() {
    const pages = Math.max(1, Math.ceil(view.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE_SIZE, end = Math.min(view.length, start + PAGE_SIZE);
    tbody.innerHTML = view.slice(start, end).map(rowHtml).join("");
    const shown = view.length ? (start + 1).toLocaleString() + "\u2013" + end.toLocaleString() : "0";
    let text = "Showing " + shown + " of " + view.length.toLocaleString();
    if (view.length !== rows.length) text += " (filtered from " + rows.length.toLocaleString() + ")";
    $("count").textContent = text;
    $("page").textContent = "Page " + (state.page + 1).toLocaleString() + " of " + pages.toLocaleString();
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    $("empty").hidden = view.length > 0 || rows.length === 0;
    document.querySelectorAll(".chart .bar").forEach((bar) => {
      const byType = bar.dataset.type !== undefined && bar.dataset.type === data.types[state.type];
      const bySearch = bar.dataset.search !== undefined && bar.dataset.search === search.value.trim();
      bar.classList.toggle("active", byType || bySearch);
    });
  }

  function setTerms() {
    state.terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  }

  function header() {
    $("columns").innerHTML = COLUMNS.map(([cls, label, key]) =>
      "<th" + (key ? ' data-sort="' + key + '" title="Sort"' : "") + ' class="' + cls + '">' + esc(label) + "</th>").join("");
    document.querySelectorAll("th[data-sort]").forEach((th) => th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.desc = state.sort === key ? !state.desc : false;
      state.sort = key;
      document.querySelectorAll("th").forEach((other) => other.classList.remove("sorted", "desc"));
      th.classList.add("sorted");
      th.classList.toggle("desc", state.desc);
      applyFilter();
    }));
  }

  function typeOptions() {
    const counts = data.types.map(() => 0);
    rows.forEach((r) => counts[r[TYPE]]++);
    typeSelect.innerHTML = '<option value="-1">All types (' + rows.length.toLocaleString() + ")</option>" +
      data.types.map((t, i) => '<option value="' + i + '">' + esc(t) + " (" + counts[i].toLocaleString() + ")</option>").join("");
  }

  function wire() {
    typeSelect.addEventListener("change", () => { state.type = Number(typeSelect.value); applyFilter(); });
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { setTerms(); applyFilter(); }, 120);
    });
    $("clear").addEventListener("click", () => {
      search.value = ""; typeSelect.value = "-1"; state.type = -1; setTerms(); applyFilter();
    });
    $("prev").addEventListener("click", () => { state.page--; render(); });
    $("next").addEventListener("click", () => { state.page++; render(); });
    document.querySelectorAll(".chart .bar").forEach((bar) => bar.addEventListener("click", () => {
      if (bar.dataset.type !== undefined) {
        const i = data.types.indexOf(bar.dataset.type);
        state.type = state.type === i ? -1 : i;
        typeSelect.value = String(state.type);
      } else if (bar.dataset.search !== undefined) {
        search.value = search.value.trim() === bar.dataset.search ? "" : bar.dataset.search;
        setTerms();
      } else {
        return;
      }
      applyFilter();
      $("filters").scrollIntoView({ block: "start" });
    }));
  }

  header();
  typeOptions();
  wire();
  applyFilter();
  document.body.dataset.ready = "true";
})();
