// Mamori review page: keyboard-first review of flagged photos. No build step, no
// framework; every action posts to /api/v1/images/{id}/reviews with the page's CSRF
// token (the session cookie alone is never enough for a write).
"use strict";

(function () {
  const main = document.getElementById("content");
  const imageId = main && main.dataset.image;
  if (!imageId) { return; }
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const strings = JSON.parse(document.getElementById("i18n").textContent);
  const status = document.getElementById("status");
  const svg = document.getElementById("boxes");
  const draft = document.getElementById("draft");
  const rows = Array.from(document.querySelectorAll("#findings tbody tr.finding"));
  const width = Number(main.dataset.width) || 1;
  const height = Number(main.dataset.height) || 1;
  let selected = -1;
  let boxMode = null; // {kind: "add"|"adjust", id, x1, y1, x2, y2}

  function say(text) { status.textContent = text; }

  function select(index) {
    if (rows.length === 0) { return; }
    selected = (index + rows.length) % rows.length;
    rows.forEach((row, i) => {
      const on = i === selected;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", on ? "true" : "false");
      const box = svg.querySelector('g.box[data-id="' + row.dataset.id + '"]');
      if (box) { box.classList.toggle("selected", on); }
    });
    const row = rows[selected];
    row.querySelector(".act-confirm").focus({ preventScroll: false });
    say("#" + row.dataset.id + " " + row.querySelector(".type").textContent.trim() +
        " — " + row.querySelector(".st").textContent.trim());
  }

  function current() { return selected >= 0 ? rows[selected] : null; }

  async function post(body) {
    say("…");
    const response = await fetch("/api/v1/images/" + encodeURIComponent(imageId) + "/reviews", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const data = await response.json();
        detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      } catch (e) { /* keep the status text */ }
      say(strings.error + ": " + detail);
      return false;
    }
    sessionStorage.setItem("mamori-status", strings.saved);
    const row = current();
    if (row) { sessionStorage.setItem("mamori-selected", row.dataset.id); }
    // Stay on this photo, even when the queue's order changed under it.
    window.location.assign(main.dataset.self);
    return true;
  }

  function act(action, row) {
    row = row || current();
    if (!row) { return; }
    const id = Number(row.dataset.id);
    if (action === "confirm" || action === "reject") {
      post({ action: action, detection_id: id });
    } else if (action === "reclassify") {
      post({ action: "reclassify", detection_id: id,
             damage_type: row.querySelector(".act-class").value });
    } else if (action === "adjust") {
      const b = row.dataset.box.split(",").map(Number);
      startBox({ kind: "adjust", id: id, x1: b[0], y1: b[1], x2: b[2], y2: b[3] });
    }
  }

  // ---- box drawing: keyboard (arrows, Shift+arrows) and mouse (drag) ----------------
  function drawDraft() {
    draft.removeAttribute("hidden");
    draft.setAttribute("x", boxMode.x1);
    draft.setAttribute("y", boxMode.y1);
    draft.setAttribute("width", Math.max(1, boxMode.x2 - boxMode.x1));
    draft.setAttribute("height", Math.max(1, boxMode.y2 - boxMode.y1));
  }

  function startBox(mode) {
    boxMode = mode;
    svg.classList.add("editing");
    drawDraft();
    say(strings.box_mode);
  }

  function endBox() {
    boxMode = null;
    draft.setAttribute("hidden", "");
    svg.classList.remove("editing");
  }

  function clampBox() {
    const b = boxMode;
    const w = Math.max(2, Math.min(width, b.x2 - b.x1));
    const h = Math.max(2, Math.min(height, b.y2 - b.y1));
    b.x1 = Math.min(Math.max(0, b.x1), width - w);
    b.y1 = Math.min(Math.max(0, b.y1), height - h);
    b.x2 = b.x1 + w;
    b.y2 = b.y1 + h;
  }

  function saveBox() {
    const b = boxMode;
    const box = { x1: Math.round(b.x1), y1: Math.round(b.y1),
                  x2: Math.round(b.x2), y2: Math.round(b.y2) };
    const body = b.kind === "add"
      ? { action: "add", damage_type: document.getElementById("add-class").value, box: box }
      : { action: "adjust", detection_id: b.id, box: box };
    endBox();
    post(body);
  }

  function addBox() {
    const w = Math.round(width / 4);
    const h = Math.round(height / 4);
    const x1 = Math.round((width - w) / 2);
    const y1 = Math.round((height - h) / 2);
    startBox({ kind: "add", id: null, x1: x1, y1: y1, x2: x1 + w, y2: y1 + h });
  }

  function boxKey(event) {
    const step = Math.max(1, Math.round(Math.max(width, height) / (event.altKey ? 200 : 50)));
    const b = boxMode;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (event.key in moves) {
      const [dx, dy] = moves[event.key];
      if (event.shiftKey) { b.x2 += dx * step; b.y2 += dy * step; }
      else { b.x1 += dx * step; b.x2 += dx * step; b.y1 += dy * step; b.y2 += dy * step; }
      clampBox();
      drawDraft();
    } else if (event.key === "Enter") {
      saveBox();
    } else if (event.key === "Escape") {
      endBox();
      say("");
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  function toImage(event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const p = point.matrixTransform(svg.getScreenCTM().inverse());
    return [Math.min(width, Math.max(0, p.x)), Math.min(height, Math.max(0, p.y))];
  }

  let dragFrom = null;
  svg.addEventListener("pointerdown", (event) => {
    if (!boxMode) { addBox(); }
    dragFrom = toImage(event);
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!dragFrom || !boxMode) { return; }
    const [x, y] = toImage(event);
    boxMode.x1 = Math.min(dragFrom[0], x); boxMode.x2 = Math.max(dragFrom[0], x);
    boxMode.y1 = Math.min(dragFrom[1], y); boxMode.y2 = Math.max(dragFrom[1], y);
    drawDraft();
  });
  svg.addEventListener("pointerup", () => {
    dragFrom = null;
    if (boxMode) { clampBox(); drawDraft(); }
  });

  // ---- buttons ------------------------------------------------------------------------
  rows.forEach((row, index) => {
    row.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", () => { selected = index; act(button.dataset.action, row); });
    });
    row.querySelector(".act-class").addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); selected = index; act("reclassify", row); }
    });
    row.addEventListener("focusin", () => {
      if (selected !== index) {
        selected = index;
        rows.forEach((r, i) => r.classList.toggle("selected", i === index));
      }
    });
  });
  document.getElementById("add-box").addEventListener("click", addBox);
  document.getElementById("grade-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { action: "grade", grade: document.getElementById("grade-value").value };
    const member = document.getElementById("grade-member").value.trim();
    const note = document.getElementById("grade-note").value.trim();
    if (member) { body.member = member; }
    if (note) { body.note = note; }
    post(body);
  });

  // ---- keyboard -----------------------------------------------------------------------
  function typing(target) {
    return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement;
  }

  document.addEventListener("keydown", (event) => {
    if (boxMode && boxKey(event)) { return; }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); main.focus(); }
      return;
    }
    const key = event.key;
    const help = document.getElementById("help");
    const handled = {
      j: () => select(selected + 1), ArrowDown: () => select(selected + 1),
      k: () => select(selected - 1), ArrowUp: () => select(selected - 1),
      c: () => act("confirm"), x: () => act("reject"),
      t: () => { const row = current(); if (row) { row.querySelector(".act-class").focus(); } },
      e: () => act("adjust"), a: () => addBox(),
      g: () => document.getElementById("grade-member").focus(),
      n: () => { if (main.dataset.next) { window.location.href = main.dataset.next; } },
      p: () => { if (main.dataset.prev) { window.location.href = main.dataset.prev; } },
      l: () => { window.location.href = main.dataset.langHref; },
      "?": () => { help.hidden = !help.hidden; if (!help.hidden) { help.scrollIntoView(); } },
      Escape: () => { help.hidden = true; },
    }[key];
    if (handled) {
      event.preventDefault();
      handled();
      return;
    }
    if (/^[1-9]$/.test(key)) {
      const row = current();
      const chooser = row && row.querySelector(".act-class");
      const index = Number(key) - 1;
      if (chooser && index < chooser.options.length) {
        chooser.selectedIndex = index;
        event.preventDefault();
        act("reclassify", row);
      }
    }
  });

  // After a reload, keep the inspector's place and tell what happened.
  const message = sessionStorage.getItem("mamori-status");
  const wanted = sessionStorage.getItem("mamori-selected");
  sessionStorage.removeItem("mamori-status");
  sessionStorage.removeItem("mamori-selected");
  let start = rows.findIndex((row) => row.dataset.status === "pending");
  if (wanted) {
    const same = rows.findIndex((row) => row.dataset.id === wanted);
    const nextPending = rows.findIndex((row) => row.dataset.status === "pending");
    start = nextPending >= 0 ? nextPending : same;
  }
  if (rows.length) { select(start >= 0 ? start : 0); }
  if (message) { say(message); }
})();
