// The review page. Every text from the build is written with textContent: nothing in a trace can become markup.
"use strict";

const ANNOTATOR = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const FACETS = ["source", "modality", "task", "question_type"];
const QUEUE_NAMES = {
  all: "All",
  unreviewed: "Unreviewed",
  rejected: "Rejected",
  disagreements: "Disagreements",
  second_reader: "Second reader",
};
const PREFETCH = 3;

const $ = (id) => document.getElementById(id);
const state = {
  session: null,
  annotator: "", // the session's annotator, kept by the server; changed only by "Switch"
  csrf: "", // the session's CSRF token, sent with every POST
  queue: "unreviewed",
  filters: { source: "", modality: "", task: "", question_type: "" },
  sample: null, // {n, seed}
  keys: [],
  more: false, // the server has more keys of this queue than it sent
  total: 0,
  serial: 0, // bumped whenever the queue or its filters change
  loadingMore: null,
  index: 0,
  counts: {},
  current: null, // item detail
  showOriginal: false,
  editing: false,
  busy: false,
  solo: -1,
};
const cache = new Map(); // "item|generation" -> Promise of detail

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function keyOf(pair) {
  return `${pair[0]}|${pair[1]}`;
}

// --- talking to the server ---------------------------------------------------------------------------
async function answer(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function getJSON(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  return answer(await fetch(query ? `${path}?${query}` : path, { credentials: "same-origin" }));
}

async function postJSON(path, value) {
  // JSON, the page's own origin, a custom header and the session's CSRF token: the server takes nothing less
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-RRD-Request": "1", "X-RRD-CSRF": state.csrf },
    body: JSON.stringify(value),
  });
  return answer(response);
}

function fetchItem(pair) {
  const key = keyOf(pair);
  if (!cache.has(key)) {
    const promise = getJSON("/api/item", { item: pair[0], generation: pair[1] });
    promise.catch(() => cache.delete(key));
    cache.set(key, promise);
  }
  return cache.get(key);
}

function prefetch() {
  for (let step = 1; step <= PREFETCH; step++) {
    const pair = state.keys[state.index + step];
    if (!pair) break;
    fetchItem(pair).then((detail) => {
      for (const image of detail.images) new Image().src = image.url; // warm the browser's cache
    }).catch(() => {});
  }
  const keep = new Set(state.keys.slice(Math.max(0, state.index - 2), state.index + PREFETCH + 1).map(keyOf));
  for (const key of cache.keys()) if (!keep.has(key)) cache.delete(key);
}

// --- status line --------------------------------------------------------------------------------------
function say(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = kind;
}

// --- state in the address bar -------------------------------------------------------------------------
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("queue") in QUEUE_NAMES) state.queue = params.get("queue");
  for (const facet of FACETS) state.filters[facet] = params.get(facet) || "";
  const n = parseInt(params.get("sample") || "", 10);
  state.sample = n > 0 ? { n, seed: parseInt(params.get("seed") || "0", 10) || 0 } : null;
}

function writeHash() {
  const params = new URLSearchParams({ queue: state.queue });
  for (const facet of FACETS) if (state.filters[facet]) params.set(facet, state.filters[facet]);
  if (state.sample) {
    params.set("sample", state.sample.n);
    params.set("seed", state.sample.seed);
  }
  history.replaceState(null, "", `#${params}`);
}

// --- the bar ------------------------------------------------------------------------------------------
function buildBar() {
  $("recipe").textContent = `${state.session.recipe} ${state.session.version}`;
  const queues = $("queues");
  queues.replaceChildren();
  for (const name of state.session.queues) {
    queues.append(
      el("button", { type: "button", "data-queue": name, onclick: () => setQueue(name) }, [
        document.createTextNode(QUEUE_NAMES[name] || name),
        el("span", { class: "count", text: "" }),
      ]),
    );
  }
  for (const facet of FACETS) {
    const select = $(`filter-${facet}`);
    const label = { source: "All sources", modality: "All modalities", task: "All tasks" }[facet] || "All types";
    select.replaceChildren(el("option", { value: "", text: label }));
    for (const value of state.session.facets[facet]) select.append(el("option", { value, text: value }));
    select.value = state.filters[facet];
    select.onchange = () => {
      state.filters[facet] = select.value;
      loadQueue();
    };
  }
  if (state.sample) {
    $("sample-n").value = state.sample.n;
    $("sample-seed").value = state.sample.seed;
  }
  const list = $("reason-list");
  list.replaceChildren();
  state.session.reasons.forEach((reason, index) => {
    const previous = state.session.reasons[index - 1];
    const classes = [reason.item ? "item-level" : "", reason.item && previous && !previous.item ? "divider" : ""];
    list.append(
      el("li", { class: classes.join(" ").trim(), "data-code": reason.code, onclick: () => chooseReason(index) }, [
        el("kbd", { text: String(index + 1) }),
        el("span", { text: reason.label }),
      ]),
    );
  });
}

function paintBar() {
  for (const button of $("queues").children) {
    const name = button.dataset.queue;
    button.classList.toggle("active", name === state.queue);
    button.querySelector(".count").textContent = state.counts[name] ?? "";
  }
  $("sample-form").classList.toggle("on", Boolean(state.sample));
  const total = Math.max(state.total, state.keys.length);
  $("position").textContent = total ? `${Math.min(state.index + 1, total)} / ${total}` : "0 / 0";
}

function setQueue(name) {
  if (name === state.queue) return;
  state.queue = name;
  loadQueue();
}

// --- loading ------------------------------------------------------------------------------------------
async function loadQueue(keepKey = null) {
  writeHash();
  const serial = ++state.serial;
  try {
    const result = await getJSON("/api/queue", queueParams());
    if (serial !== state.serial) return;
    state.keys = result.keys;
    state.more = result.more;
    state.counts = result.counts;
    state.total = result.counts[state.queue] ?? result.keys.length;
    const at = keepKey ? state.keys.findIndex((pair) => keyOf(pair) === keepKey) : -1;
    state.index = at >= 0 ? at : 0;
    await show();
  } catch (error) {
    say(error.message, "error");
  }
}

function loadMore() {
  // the queue comes in pages: ask for the next one before the annotator reaches the end of this one
  if (!state.more || state.loadingMore || !state.keys.length) return state.loadingMore;
  const serial = state.serial;
  const after = keyOf(state.keys[state.keys.length - 1]);
  state.loadingMore = getJSON("/api/queue", { ...queueParams(), after })
    .then((result) => {
      if (serial !== state.serial) return;
      state.keys.push(...result.keys);
      state.more = result.more;
    })
    .catch((error) => say(error.message, "error"))
    .finally(() => {
      state.loadingMore = null;
    });
  return state.loadingMore;
}

async function show() {
  paintBar();
  state.editing = false;
  state.showOriginal = false;
  stopEditing();
  if (state.index >= state.keys.length - 20) {
    const loading = loadMore();
    if (loading && state.index >= state.keys.length) await loading;
  }
  const pair = state.keys[state.index];
  $("empty").hidden = Boolean(pair);
  $("images").hidden = $("panel").hidden = !pair;
  if (!pair) {
    state.current = null;
    $("empty-text").textContent =
      state.index > 0 && state.keys.length ? "End of this queue. Well done." : "Nothing in this queue.";
    $("images").replaceChildren();
    return;
  }
  try {
    const detail = await fetchItem(pair);
    if (state.keys[state.index] !== pair) return; // the annotator moved on meanwhile
    state.current = detail;
    render(detail);
    prefetch();
  } catch (error) {
    say(error.message, "error");
  }
}

// --- rendering one trace ------------------------------------------------------------------------------
function render(detail) {
  renderImages(detail.images);
  renderMeta(detail);
  $("question").textContent = detail.question;
  renderTrace(detail);
  renderChecks(detail.checks);
  renderVerdicts(detail.review);
  const banner = $("banner");
  banner.hidden = state.queue !== "disagreements";
  const latest = new Map(detail.review.verdicts.filter((v) => !v.adjudication).map((v) => [v.annotator, v]));
  const said = [...latest.values()].map((v) => `${v.annotator} ${v.decision}${v.reason ? ` (${v.reason})` : ""}`);
  banner.textContent = detail.review.can_adjudicate
    ? `Adjudicating: ${said.join(", ") || "no verdicts"}. Your verdict settles this trace.`
    : `You took part: ${said.join(", ") || "no verdicts"}. Your verdict replaces yours; ` +
      "an annotator who took no part settles the trace.";
  $("panel").scrollTop = 0;
}

function renderMeta(detail) {
  const meta = detail.meta;
  const chips = [
    ["source", meta.source],
    ["", meta.modality],
    ["", `${meta.task} \u00b7 ${meta.question_type.replace("_", " ")}`],
  ];
  if (meta.attempts) {
    const passed = Math.round((meta.pass_at_k ?? 0) * meta.attempts);
    chips.push(["pass@k", `${passed}/${meta.attempts}`]);
  }
  chips.push(["attempt", `${meta.attempt}${meta.guided ? " (guided)" : ""}`]);
  chips.push(["split", meta.split || "left out"]);
  const who = [meta.eye !== "unknown" ? `${meta.eye} eye` : "", meta.age ? `${meta.age} y` : "",
    meta.sex !== "unknown" ? meta.sex : ""].filter(Boolean).join(", ");
  if (who) chips.push(["", who]);
  chips.push(["teacher", meta.model]);
  const box = $("meta");
  box.replaceChildren();
  for (const [label, value] of chips) {
    box.append(el("span", { class: "chip" }, [label ? el("b", { text: `${label} ` }) : null, document.createTextNode(value)]));
  }
  if (!meta.exported) box.append(el("span", { class: "chip warn", text: "not in the export" }));
}

function answerLetters(text) {
  return new Set((String(text || "").toUpperCase().match(/\b[A-H]\b/g) || []));
}

function renderTrace(detail) {
  const edit = detail.review.edit;
  const useEdit = edit && !state.showOriginal;
  const think = useEdit && edit.think != null ? edit.think : detail.trace.think;
  const answer = useEdit && edit.answer != null ? edit.answer : detail.trace.answer;
  const badge = $("edited-badge");
  badge.hidden = !edit;
  badge.textContent = edit ? (useEdit ? `edited by ${edit.annotator} \u00b7 O: original` : "teacher's original \u00b7 O: edited") : "";

  const steps = $("steps");
  steps.replaceChildren();
  for (const line of String(think).split(/\n+/)) {
    if (line.trim()) steps.append(el("p", { text: line.trim() }));
  }
  const choice = detail.options.length > 0;
  const picked = choice ? answerLetters(answer) : new Set();
  const reference = choice ? answerLetters(detail.reference.text) : new Set();
  const options = $("options");
  options.replaceChildren();
  for (const option of detail.options) {
    const classes = [reference.has(option.letter) ? "ref" : "", picked.has(option.letter) ? "picked" : ""];
    options.append(
      el("li", { class: classes.join(" ").trim() }, [
        el("span", { class: "letter", text: option.letter }),
        el("span", { text: option.text }),
        el("span", { class: "tags" }, [
          picked.has(option.letter) ? el("span", { class: "tag-trace", text: "trace" }) : null,
          reference.has(option.letter) ? el("span", { class: "tag-ref", text: "reference" }) : null,
        ]),
      ]),
    );
  }
  $("trace-answer").textContent = answer ?? "(none)";
  const aliases = detail.reference.aliases.length ? `  (also: ${detail.reference.aliases.join(", ")})` : "";
  $("reference").textContent = detail.reference.shown + aliases;
  const match = $("match");
  const ok = useEdit ? true : detail.trace.verified;
  match.className = `match ${ok ? "ok" : "bad"}`;
  match.textContent = ok ? "\u2713 the trace's answer matches the reference" : "\u2717 the trace's answer does not match";
}

function renderChecks(checks) {
  const list = $("checks");
  list.replaceChildren();
  for (const check of checks) {
    list.append(
      el("li", { class: check.passed ? "" : "failed" }, [
        document.createTextNode(check.name),
        check.detail ? el("span", { class: "detail", text: check.detail }) : null,
      ]),
    );
  }
}

function timeAgo(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function renderVerdicts(review) {
  $("verdicts-box").hidden = review.verdicts.length === 0;
  const list = $("verdicts");
  list.replaceChildren();
  for (const verdict of [...review.verdicts].reverse()) {
    const edited = [verdict.edited_answer && `answer: ${verdict.edited_answer}`, verdict.edited_think]
      .filter(Boolean)
      .join(" | ");
    const shortEdit = edited.length > 160 ? `${edited.slice(0, 160)}\u2026` : edited;
    const detail = [verdict.reason, verdict.note, shortEdit].filter(Boolean).join(": ");
    list.append(
      el("li", { class: verdict.annotator === state.annotator ? "mine" : "", title: edited || null }, [
        document.createTextNode(`${verdict.annotator}${verdict.adjudication ? " (adjudication)" : ""} `),
        el("span", { class: `decision-${verdict.decision}`, text: verdict.decision }),
        detail ? el("span", { class: "detail", text: detail }) : null,
        el("span", { class: "detail", text: timeAgo(verdict.time) }),
      ]),
    );
  }
  if (review.disagreement) list.prepend(el("li", { class: "decision-reject", text: "Annotators disagree on this trace." }));
}

// --- images: side by side, zoom and pan ----------------------------------------------------------------
const viewers = [];

function renderImages(images) {
  const box = $("images");
  box.replaceChildren();
  viewers.length = 0;
  state.solo = -1;
  box.classList.remove("solo");
  box.dataset.aspect = images.length
    ? String(images.reduce((sum, image) => sum + image.width / Math.max(image.height, 1), 0) / images.length)
    : "1";
  images.forEach((image, index) => {
    const img = el("img", { src: image.url, alt: image.caption || `image ${index + 1}`, draggable: "false" });
    const level = el("span", { class: "zoom-level", text: "" });
    const frame = el("div", { class: "frame" }, [img, level]);
    const caption = el("figcaption", {}, [
      el("span", { class: "modality", text: image.modality }),
      document.createTextNode(image.caption || ""),
      el("span", { class: "size", text: `${image.width}\u00d7${image.height}` }),
    ]);
    const figure = el("figure", { class: "viewer" }, [frame, caption]);
    box.append(figure);
    const viewer = { figure, frame, img, level, scale: 1, x: 0, y: 0 };
    viewers.push(viewer);
    attachZoom(viewer);
  });
  layoutImages();
}

function layoutImages() {
  // the number of columns that shows every image largest in the space there is (side by side when it fits)
  const box = $("images");
  const count = Math.max(box.children.length, viewers.length, 1);
  const aspect = parseFloat(box.dataset.aspect || "1") || 1;
  const width = box.clientWidth || 1;
  const height = (box.clientHeight || 1) - 28; // caption line
  let best = 1;
  let bestSide = 0;
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const side = Math.min(width / columns / aspect, height / rows);
    if (side > bestSide + 1) {
      best = columns;
      bestSide = side;
    }
  }
  box.style.gridTemplateColumns = `repeat(${best}, minmax(0, 1fr))`;
}

function paintZoom(viewer) {
  viewer.img.style.transform = `translate(${viewer.x}px, ${viewer.y}px) scale(${viewer.scale})`;
  viewer.level.textContent = viewer.scale === 1 ? "" : `${viewer.scale.toFixed(1)}\u00d7`;
}

function zoomAt(viewer, factor, px, py) {
  const scale = Math.min(20, Math.max(1, viewer.scale * factor));
  const ratio = scale / viewer.scale;
  viewer.x = px - (px - viewer.x) * ratio;
  viewer.y = py - (py - viewer.y) * ratio;
  viewer.scale = scale;
  if (scale === 1) viewer.x = viewer.y = 0;
  paintZoom(viewer);
}

function resetZoom(viewer) {
  viewer.scale = 1;
  viewer.x = viewer.y = 0;
  paintZoom(viewer);
}

function attachZoom(viewer) {
  const { frame } = viewer;
  frame.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = frame.getBoundingClientRect();
    zoomAt(viewer, Math.pow(1.0015, -event.deltaY), event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });
  let drag = null;
  frame.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX - viewer.x, y: event.clientY - viewer.y };
    frame.setPointerCapture(event.pointerId);
    frame.classList.add("dragging");
  });
  frame.addEventListener("pointermove", (event) => {
    if (!drag || viewer.scale === 1) return;
    viewer.x = event.clientX - drag.x;
    viewer.y = event.clientY - drag.y;
    paintZoom(viewer);
  });
  const end = () => {
    drag = null;
    frame.classList.remove("dragging");
  };
  frame.addEventListener("pointerup", end);
  frame.addEventListener("pointercancel", end);
  frame.addEventListener("dblclick", () => resetZoom(viewer));
}

function zoomAll(factor) {
  for (const viewer of viewers) {
    const rect = viewer.frame.getBoundingClientRect();
    if (factor === 0) resetZoom(viewer);
    else zoomAt(viewer, factor, rect.width / 2, rect.height / 2);
  }
}

function cycleSolo() {
  if (viewers.length < 2) return;
  state.solo = state.solo + 1 >= viewers.length ? -1 : state.solo + 1;
  $("images").classList.toggle("solo", state.solo >= 0);
  if (state.solo < 0) layoutImages();
  viewers.forEach((viewer, index) => viewer.figure.classList.toggle("shown", index === state.solo));
}

// --- verdicts -----------------------------------------------------------------------------------------
function needAnnotator() {
  if (ANNOTATOR.test(state.annotator)) return false;
  startNaming();
  say("Type your name first (letters, digits, . _ -): it names your verdict file.", "error");
  return true;
}

// the annotator belongs to the browser's session on the server: named once, changed only by "Switch"
function paintAnnotator() {
  const input = $("annotator");
  input.value = state.annotator;
  input.readOnly = Boolean(state.annotator);
  input.classList.toggle("missing", !state.annotator);
  $("switch-annotator").hidden = !state.annotator;
}

function startNaming() {
  const input = $("annotator");
  input.readOnly = false;
  input.classList.add("missing");
  $("switch-annotator").hidden = true;
  input.focus();
  input.select();
}

async function nameAnnotator() {
  const input = $("annotator");
  const name = input.value.trim();
  if (name === state.annotator && name) {
    paintAnnotator();
    input.blur();
    return;
  }
  if (!ANNOTATOR.test(name)) {
    input.classList.add("missing");
    say("A name of letters, digits, '.', '_' or '-'", "error");
    return;
  }
  try {
    state.annotator = (await postJSON("/api/annotator", { annotator: name })).annotator;
  } catch (error) {
    say(error.message, "error");
    return;
  }
  paintAnnotator();
  input.blur();
  cache.clear();
  await loadQueue(); // "unreviewed" is by annotator: the queue is theirs now
  say(`Verdicts are saved as ${state.annotator}`, "ok");
}

async function decide(fields) {
  const detail = state.current;
  if (!detail || state.busy || needAnnotator()) return false;
  state.busy = true;
  try {
    const review = await postJSON("/api/verdict", {
      item_id: detail.item_id,
      generation_id: detail.generation_id,
      adjudication: state.queue === "disagreements" && detail.review.can_adjudicate,
      ...fields,
    });
    detail.review = review;
    const label = { accept: "accepted", edit: "edited", reject: `rejected (${fields.reason})` }[fields.decision];
    say(`Saved: ${label}`, "ok");
    refreshCounts();
    state.index += 1;
    await show();
    return true;
  } catch (error) {
    say(error.message, "error");
    return false;
  } finally {
    state.busy = false;
  }
}

function queueParams() {
  const params = { queue: state.queue, ...state.filters };
  if (state.sample) Object.assign(params, { sample: state.sample.n, seed: state.sample.seed });
  return params;
}

async function refreshCounts() {
  // the queue's own list stays as it is (the annotator walks on); only the numbers on the buttons change
  try {
    state.counts = (await getJSON("/api/queue", { ...queueParams(), counts_only: 1 })).counts;
    paintBar();
  } catch (error) {
    say(error.message, "error");
  }
}

function accept() {
  return decide({ decision: "accept" });
}

// reject: a short list, or Other with a note
let reasonIndex = -1;

function openReasons() {
  if (!state.current || needAnnotator()) return;
  reasonIndex = -1;
  $("reason-note").value = "";
  paintReasons();
  $("reasons").hidden = false;
}

function closeReasons() {
  $("reasons").hidden = true;
  $("reason-note").blur();
}

function paintReasons() {
  [...$("reason-list").children].forEach((li, index) => li.classList.toggle("selected", index === reasonIndex));
}

function chooseReason(index) {
  const reason = state.session.reasons[index];
  if (!reason) return;
  reasonIndex = index;
  paintReasons();
  if (reason.code === "other" && !$("reason-note").value.trim()) {
    $("reason-note").focus();
    return;
  }
  submitReject();
}

async function submitReject() {
  const reason = state.session.reasons[reasonIndex >= 0 ? reasonIndex : state.session.reasons.findIndex((r) => r.code === "other")];
  const note = $("reason-note").value.trim();
  closeReasons();
  const saved = await decide({ decision: "reject", reason: reason.code, note: note || null });
  if (!saved) openReasonsKeeping(reason, note);
}

function openReasonsKeeping(reason, note) {
  openReasons();
  reasonIndex = state.session.reasons.indexOf(reason);
  $("reason-note").value = note;
  paintReasons();
}

// edit in place
function startEditing() {
  const detail = state.current;
  if (!detail || needAnnotator()) return;
  state.editing = true;
  const edit = detail.review.edit;
  const think = $("edit-think");
  think.value = edit && edit.think != null ? edit.think : detail.trace.think;
  $("edit-answer").value = edit && edit.answer != null ? edit.answer : (detail.trace.answer ?? "");
  $("steps").hidden = true;
  $("trace-answer").hidden = true;
  think.hidden = $("edit-answer").hidden = false;
  think.style.height = `${Math.min(window.innerHeight * 0.6, Math.max(220, think.scrollHeight + 8))}px`;
  $("decide").hidden = true;
  $("editing").hidden = false;
  think.focus();
  say("Editing: correct the reasoning or the answer, then Ctrl+Enter");
}

function stopEditing() {
  state.editing = false;
  $("steps").hidden = $("trace-answer").hidden = false;
  $("edit-think").hidden = $("edit-answer").hidden = true;
  $("decide").hidden = false;
  $("editing").hidden = true;
}

function saveEdit() {
  // on failure the editor stays open with the text as typed, and the status line says what is wrong
  return decide({ decision: "edit", edited_think: $("edit-think").value, edited_answer: $("edit-answer").value });
}

function cancelEdit() {
  stopEditing();
  say("Edit cancelled");
}

// --- moving -------------------------------------------------------------------------------------------
function move(step) {
  const next = state.index + step;
  if (next < 0 || next > state.keys.length || (next === state.keys.length && state.more)) return;
  state.index = Math.min(next, state.keys.length);
  say("");
  show();
}

// --- keyboard -----------------------------------------------------------------------------------------
function onKey(event) {
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement;
  if (!$("reasons").hidden) {
    if (event.key === "Escape") {
      event.preventDefault();
      closeReasons();
      say("Reject cancelled");
    } else if (target === $("reason-note")) {
      if (event.key === "Enter") {
        event.preventDefault();
        submitReject();
      }
    } else if (/^[1-9]$/.test(event.key)) {
      event.preventDefault();
      chooseReason(Number(event.key) - 1);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const count = state.session.reasons.length;
      reasonIndex = (reasonIndex + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
      paintReasons();
    } else if (event.key === "Enter" && reasonIndex >= 0) {
      event.preventDefault();
      chooseReason(reasonIndex);
    }
    return;
  }
  if (state.editing) {
    if (event.key === "Escape") {
      event.preventDefault();
      cancelEdit();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      saveEdit();
    }
    return;
  }
  if (!$("help").hidden && (event.key === "Escape" || event.key === "?")) {
    event.preventDefault();
    $("help").hidden = true;
    return;
  }
  if (event.altKey && /^[1-5]$/.test(event.key)) {
    event.preventDefault();
    setQueue(state.session.queues[Number(event.key) - 1]);
    return;
  }
  if (typing) {
    if (event.key === "Escape") target.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const actions = {
    a: accept,
    r: openReasons,
    e: startEditing,
    j: () => move(1),
    ArrowRight: () => move(1),
    k: () => move(-1),
    ArrowLeft: () => move(-1),
    "+": () => zoomAll(1.5),
    "=": () => zoomAll(1.5),
    "-": () => zoomAll(1 / 1.5),
    0: () => zoomAll(0),
    f: cycleSolo,
    o: () => {
      if (state.current && state.current.review.edit) {
        state.showOriginal = !state.showOriginal;
        renderTrace(state.current);
      }
    },
    "?": () => ($("help").hidden = false),
  };
  const action = actions[event.key] || actions[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
}

// --- start --------------------------------------------------------------------------------------------
function wire() {
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", layoutImages);
  $("accept").onclick = accept;
  $("reject").onclick = openReasons;
  $("edit").onclick = startEditing;
  $("save-edit").onclick = saveEdit;
  $("cancel-edit").onclick = cancelEdit;
  $("prev").onclick = () => move(-1);
  $("next").onclick = () => move(1);
  $("help-button").onclick = () => ($("help").hidden = !$("help").hidden);
  $("help").onclick = (event) => {
    if (event.target === $("help")) $("help").hidden = true;
  };
  $("reasons").onclick = (event) => {
    if (event.target === $("reasons")) closeReasons();
  };
  const who = $("annotator");
  who.onkeydown = (event) => {
    if (who.readOnly) return;
    if (event.key === "Enter") {
      event.preventDefault();
      nameAnnotator();
    } else if (event.key === "Escape" && state.annotator) {
      event.preventDefault();
      paintAnnotator();
      who.blur();
      say("");
    }
  };
  $("switch-annotator").onclick = () => {
    startNaming();
    say("Type the name to review as, then Enter (Esc keeps the current one)");
  };
  $("sample-form").onsubmit = (event) => {
    event.preventDefault();
    const n = parseInt($("sample-n").value, 10);
    if (!(n > 0)) {
      say("Batch size: a whole number above 0", "error");
      return;
    }
    state.sample = { n, seed: parseInt($("sample-seed").value || "0", 10) || 0 };
    document.activeElement.blur();
    loadQueue();
  };
  $("sample-clear").onclick = () => {
    state.sample = null;
    $("sample-n").value = "";
    loadQueue();
  };
}

async function start() {
  wire();
  readHash();
  try {
    state.session = await getJSON("/api/session");
  } catch (error) {
    say(error.message, "error");
    return;
  }
  state.annotator = state.session.annotator || "";
  state.csrf = state.session.csrf;
  paintAnnotator();
  buildBar();
  if (state.session.build_note) say(state.session.build_note, "error");
  else if (!state.annotator) needAnnotator();
  await loadQueue();
}

start();
