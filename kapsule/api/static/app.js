// Kapsule studio: upload a song, start a job, follow it, review it, play and download the video.
// Uses only the public /v1 API (see /docs). No build step, no dependencies. results.js shows a
// finished job (downloads, shots, re-rolls, past videos); grid.js the beat grid of a job in review.
// With API keys, the key is traded once for an HttpOnly session cookie (POST /v1/session): the page
// never stores it, and no script (a notebook's included) can read the session. Notebooks are shown
// in a sandboxed frame through short-lived signed links, never as blob: URLs of this origin.
"use strict";

const STAGES = [
  ["analyze", "Listening", 0.10],
  ["storyboard", "Storyboard", 0.05],
  ["generate", "Shots", 0.60],
  ["assemble", "Editing", 0.25],
];
const NOTEBOOKS = [
  ["01_analyze", "1. Analysis of the song"],
  ["02_storyboard", "2. Storyboard"],
  ["03_generate", "3. Generated shots"],
  ["04_assemble", "4. Final edit"],
];
const STATE_LABELS = { awaiting_approval: "waiting for your approval" }; // the others read as they are
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// awaiting_approval is not finished: the page keeps following the job through the approval.
const $ = (id) => document.getElementById(id);

let needsKey = false;
let maxUploadBytes = 0;
let defaultVideoModel = "local";
let current = null; // the job shown
let follow = null; // EventSource or interval id

// ------------------------------------------------------------------------------------------ API

async function api(method, path, body, extra = {}) {
  const headers = { ...extra };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Error("The Kapsule server cannot be reached. Is `kapsule serve` still running?");
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401 && needsKey) showSignedIn(false);
  if (!response.ok) {
    const error = (data && data.error) || { message: `The server answered ${response.status}.` };
    throw new Error(error.message);
  }
  return data;
}

// People read stage names, not notebook file names ("starting 03_generate").
function humanMessage(text) {
  let message = text || "";
  for (const [name, label] of NOTEBOOKS) message = message.replaceAll(name, label.replace(/^\d\. /, "").toLowerCase());
  return message;
}

const stateLabel = (state) => STATE_LABELS[state] || state.replace("_", " ");

// ------------------------------------------------------------------------------------- session

function humanBytes(n) {
  const mib = 1024 * 1024;
  return n % mib === 0 ? `${n / mib} MiB` : `${(n / 1e6).toFixed(1)} MB`;
}

function showSignedIn(signedIn) {
  $("auth").hidden = signedIn;
  $("sign-out").hidden = !signedIn;
}

async function signIn(event) {
  event.preventDefault();
  showError("");
  const key = $("api-key").value.trim();
  $("api-key").value = ""; // the key leaves the page with this one request
  if (!key) return;
  try {
    await api("POST", "/v1/session", { key });
    showSignedIn(true);
    loadJobs();
  } catch (e) {
    showError(e.message);
  }
}

async function signOut() {
  await fetch("/v1/session", { method: "DELETE" }).catch(() => null);
  stopFollowing();
  current = null;
  $("job").hidden = true;
  lockForm(false);
  $("jobs").replaceChildren();
  showSignedIn(false);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  if (message) box.focus?.();
}

// --------------------------------------------------------------------------------------- upload

function putWithProgress(ticket, blob, onProgress, extraHeaders = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(ticket.method, ticket.url);
    for (const [name, value] of Object.entries({ ...ticket.headers, ...extraHeaders })) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded); };
    xhr.onload = () => {
      // 308: a resumable session took this chunk and wants the next one.
      if ((xhr.status >= 200 && xhr.status < 300) || xhr.status === 308) return resolve(xhr);
      let message = `The upload failed (${xhr.status}).`;
      try { message = JSON.parse(xhr.responseText).error.message; } catch (_) { /* not JSON (GCS XML) */ }
      reject(new Error(message));
    };
    xhr.onerror = () => reject(new Error("The upload was interrupted; check the connection and try again."));
    xhr.send(blob);
  });
}

function showProgress(done, total) {
  $("upload-progress").value = total ? done / total : 0;
  $("upload-text").textContent = `${Math.round((100 * done) / (total || 1))} % of ${humanBytes(total)}`;
}

const CHUNK = 8 * 1024 * 1024; // resumable sessions take chunks in multiples of 256 KiB

async function upload(ticket, file) {
  // A large song on GCS goes up in 8 MiB chunks through a resumable session (progress per chunk).
  // Resuming after a dropped connection (asking the session how much it holds) is not done yet: a
  // failed chunk fails the upload.
  if (!ticket.resumable_url) return putWithProgress(ticket, file, (n) => showProgress(n, file.size));
  let offset = 0;
  while (offset < file.size) {
    const end = Math.min(file.size, offset + CHUNK);
    const range = { "Content-Range": `bytes ${offset}-${end - 1}/${file.size}` };
    const chunk = { method: "PUT", url: ticket.resumable_url, headers: {} };
    await putWithProgress(chunk, file.slice(offset, end), (n) => showProgress(offset + n, file.size), range);
    offset = end;
  }
  return null;
}

function numberOrNull(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

function jobOptions() {
  const options = {
    prompt: $("prompt").value,
    style: $("style").value,
    aspect_ratio: $("aspect").value,
    captions: $("captions").value,
    review: $("review-first").checked,
    resolution: $("resolution").value,
    transition: $("transition").value,
    continuity: $("continuity").value,
    lyrics_aligner: $("aligner").value,
    budget_usd: Number($("budget").value || 0),
    max_shots: Number($("max-shots").value || 0),
    seed: Number($("seed").value || 0),
  };
  for (const [field, id] of [["video_model", "video-model"], ["prompt_model", "prompt-model"]]) {
    if ($(id).value.trim()) options[field] = $(id).value.trim();
  }
  for (const [field, id] of [["bpm", "bpm"], ["beats_per_bar", "beats-per-bar"], ["downbeat", "downbeat"]]) {
    const value = numberOrNull(id);
    if (value !== null) options[field] = value;
  }
  if ($("lyrics").value.trim()) options.lyrics_text = $("lyrics").value; // timed or aligned by the job
  return options;
}

async function uploadReferences() {
  const ids = [];
  for (const image of $("references").files) {
    const ticket = await api("POST", "/v1/uploads", {
      filename: image.name, content_type: image.type, size: image.size, purpose: "reference_image",
    });
    await putWithProgress(ticket, image, () => {});
    ids.push(ticket.upload_id);
  }
  return ids;
}

async function makeVideo(event) {
  event.preventDefault();
  showError("");
  const file = $("song").files[0];
  if (!file) return showError("Choose a song first: drop it on the box or use the file picker.");
  if (maxUploadBytes && file.size > maxUploadBytes) {
    return showError(`The file is ${humanBytes(file.size)}; Kapsule accepts songs up to ${humanBytes(maxUploadBytes)}.`);
  }
  $("make").disabled = true;
  try {
    const options = jobOptions();
    // Options and lyrics are checked before the song goes up: a typo costs no upload. (Lyrics timed
    // past the song's end are found once the song is there: the page never reads the file itself.)
    await api("POST", "/v1/jobs/check", { ...options, filename: file.name });
    $("upload-box").hidden = false;
    showProgress(0, file.size);
    const ticket = await api("POST", "/v1/uploads", {
      filename: file.name,
      content_type: file.type || "application/octet-stream",
      size: file.size,
    });
    await upload(ticket, file);
    showProgress(file.size, file.size);
    const references = await uploadReferences();
    const body = { ...options, upload_id: ticket.upload_id, reference_upload_ids: references };
    const job = await api("POST", "/v1/jobs", body, { "Idempotency-Key": ticket.upload_id });
    showJob(job);
    loadJobs();
    $("job").scrollIntoView({ block: "start" });
    $("job-title").focus({ preventScroll: true }); // the new job is where the page goes on
  } catch (e) {
    showError(e.message);
  } finally {
    $("make").disabled = false;
    $("upload-box").hidden = true;
  }
}

function lockForm(locked) {
  $("new-fields").disabled = locked;
  $("form-locked").hidden = !locked;
}

function describeRenderer() {
  const model = $("video-model").value.trim() || defaultVideoModel;
  $("prompt-hint").textContent = model === "local"
    ? "This server makes videos with the local renderer: free and on this machine, but abstract. It " +
      "takes only colours and energy from these words (a Veo model films what you describe)."
    : `Shots are filmed by ${model} from these words.`;
}

// ------------------------------------------------------------------------------------ one job

function stageFraction(index, progress) {
  const before = STAGES.slice(0, index).reduce((sum, s) => sum + s[2], 0);
  return Math.min(1, Math.max(0, (progress - before) / STAGES[index][2]));
}

function renderStages(job) {
  const list = $("stages");
  list.replaceChildren();
  const waiting = job.state === "awaiting_approval";
  STAGES.forEach(([stage, label], i) => {
    const fraction = job.state === "succeeded" ? 1 : stageFraction(i, job.progress);
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.id = `stage-${stage}`;
    name.textContent = label;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = fraction;
    bar.setAttribute("aria-labelledby", name.id);
    const note = document.createElement("span");
    if (fraction >= 1) note.textContent = "done";
    else if (waiting && stage === "generate") note.textContent = "after your approval";
    else if (job.stage === stage && !FINISHED.has(job.state) && !waiting) note.textContent = `${Math.round(fraction * 100)} %`;
    if (fraction >= 1) li.className = "done";
    li.append(name, bar, note);
    list.append(li);
  });
}

function stopFollowing() {
  if (follow && follow.close) follow.close();
  else if (follow) clearInterval(follow);
  follow = null;
}

function focusLost(element) {
  return !element || element === document.body || !document.body.contains(element) ||
    Boolean(element.closest("[hidden]")) || element.disabled;
}

function refocus() {
  // A button that disappears (or is disabled) under the keyboard's focus (Approve, Cancel, Re-roll)
  // drops the focus to the page: it goes to the job's heading instead.
  if (focusLost(document.activeElement) && !$("job").hidden) $("job-title").focus({ preventScroll: true });
}

function keepFocus(render) {
  const focused = document.activeElement;
  render();
  if (focused && focused !== document.body && focusLost(focused)) refocus();
}

function showJob(job) {
  const changed = !current || current.id !== job.id;
  const stateChanged = changed || current.state !== job.state;
  current = job;
  keepFocus(() => {
    $("job").hidden = false;
    const again = job.reroll ? ` (shot ${job.reroll.shot + 1} again)` : "";
    $("job-song").textContent = (job.params.song || job.id) + again;
    $("job-state").textContent = stateLabel(job.state);
    const error = job.error ? ` — ${job.error.message}` : "";
    $("job-message").textContent = humanMessage(job.message) + error;
    $("cancel").hidden = FINISHED.has(job.state);
    lockForm(!FINISHED.has(job.state));
    renderStages(job);
    if (job.state === "awaiting_approval") showReview(job);
    else $("review").hidden = true;
    if (job.state === "failed") showError(`The video could not be made: ${job.error ? job.error.message : job.message}`);
    showResultOrKeep(job);
  });
  const moving = !FINISHED.has(job.state) && job.state !== "awaiting_approval";
  if (changed) {
    stopFollowing();
    if (moving) startFollowing(job.id);
  } else if (FINISHED.has(job.state)) {
    stopFollowing();
  } else if (moving && !follow) {
    startFollowing(job.id); // approved: the stream ended at the pause, follow the job again
  }
  if (stateChanged && !changed) loadJobs(); // past videos show each job's state as it is now
}

function startFollowing(id) {
  // The session cookie goes with EventSource too. A stream ends when the job finishes or pauses
  // ("end"); after its lifetime ("reconnect") the browser reconnects by itself with Last-Event-ID.
  if (window.EventSource) {
    const source = new EventSource(`/v1/jobs/${id}/events`);
    source.addEventListener("job", (e) => { if (current && current.id === id) showJob(JSON.parse(e.data)); });
    source.addEventListener("end", () => { source.close(); if (follow === source) follow = null; });
    let reconnecting = false; // the server ended the stream at its lifetime: let the browser reconnect
    source.addEventListener("reconnect", () => { reconnecting = true; });
    source.addEventListener("open", () => { reconnecting = false; });
    source.onerror = () => {
      if (reconnecting && source.readyState === EventSource.CONNECTING) return; // else refused (429…)
      source.close();
      if (follow === source) { follow = setInterval(() => poll(id), 1500); }
    };
    follow = source;
  } else {
    follow = setInterval(() => poll(id), 1500);
  }
}

async function poll(id) {
  try {
    const job = await api("GET", `/v1/jobs/${id}`);
    if (current && current.id === id) showJob(job);
  } catch (e) {
    showError(e.message);
  }
}

async function cancelJob() {
  if (!current) return;
  try {
    showJob(await api("POST", `/v1/jobs/${current.id}:cancel`));
    refocus();
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------------ review before paying

const money = (usd) => `$${Number(usd).toFixed(2)}`;
let reviewShownFor = null;

function shotMeta(shot) {
  return `${shot.start.toFixed(1)}–${shot.end.toFixed(1)} s (${shot.seconds.toFixed(1)} s), ` +
    `${shot.request_seconds} s asked, ${money(shot.cost_usd)}`;
}

async function showReview(job) {
  $("review").hidden = false;
  if (reviewShownFor === job.id) return;
  reviewShownFor = job.id;
  try {
    await showGrid(job, gridHelpers);
    const review = await api("GET", `/v1/jobs/${job.id}/storyboard`);
    const budget = review.budget_usd ? ` Budget: ${money(review.budget_usd)}.` : "";
    $("review-cost").textContent = `${review.shots.length} shots, ${Math.round(review.video_seconds)} s of video ` +
      `with ${review.video_model}: estimated ${money(review.total_usd)}.${budget} Edit any prompt, then approve.`;
    const list = $("review-shots");
    // What was typed while the storyboard was re-planned stays, on every shot whose prompt the
    // re-plan did not change.
    const typed = new Map();
    for (const text of list.querySelectorAll("textarea")) {
      if (text.value !== text.dataset.original) typed.set(text.dataset.original, text.value);
    }
    list.replaceChildren();
    for (const shot of review.shots) {
      const li = document.createElement("li");
      const label = document.createElement("label");
      label.htmlFor = `shot-prompt-${shot.number}`;
      label.textContent = `Shot ${shot.number} prompt`;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.id = `shot-meta-${shot.number}`;
      meta.textContent = shotMeta(shot);
      const text = document.createElement("textarea");
      text.id = `shot-prompt-${shot.number}`;
      text.rows = 2;
      text.maxLength = 2000;
      text.value = typed.has(shot.prompt) ? typed.get(shot.prompt) : shot.prompt;
      text.dataset.index = shot.index;
      text.dataset.original = shot.prompt;
      text.setAttribute("aria-describedby", meta.id);
      li.append(label, meta, text);
      list.append(li);
    }
  } catch (e) {
    reviewShownFor = null;
    showError(e.message);
  } finally {
    setReplanning(false);
  }
}

function setReplanning(busy) {
  // While a grid change re-plans the storyboard, its prompts cannot be typed into: the list is
  // about to be rebuilt.
  $("review-shots").setAttribute("aria-busy", String(busy));
  for (const text of $("review-shots").querySelectorAll("textarea")) text.readOnly = busy;
  $("approve").disabled = busy;
}

const gridHelpers = {
  api: (...args) => api(...args),
  protectedUrl: async (path) => path,  // the session cookie goes with media requests too
  showError: (message) => showError(message),
  replanning: () => setReplanning(true),
  refresh: async (id) => {  // the grid changed: the storyboard and its cost are new, show them again
    reviewShownFor = null;
    await showReview(await api("GET", `/v1/jobs/${id}`));
  },
  settled: () => setReplanning(false),
};

async function approveJob() {
  if (!current) return;
  showError("");
  const prompts = {};
  for (const text of $("review-shots").querySelectorAll("textarea")) {
    if (text.value.trim() !== text.dataset.original.trim()) prompts[text.dataset.index] = text.value;
  }
  $("approve").disabled = true;
  refocus(); // the disabled button let go of the focus while the request is out
  try {
    showJob(await api("POST", `/v1/jobs/${current.id}:approve`, { prompts }));
  } catch (e) {
    showError(e.message);
  } finally {
    $("approve").disabled = false;
    refocus();
  }
}

// ------------------------------------------------------------------------------------- set up

function setUpDrop() {
  const drop = $("drop");
  const input = $("song");
  const show = () => {
    const f = input.files[0];
    $("drop-text").textContent = f ? `${f.name} (${(f.size / 1e6).toFixed(1)} MB)` : $("drop-text").textContent;
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; show(); }
  });
}

async function start() {
  setUpDrop();
  $("new-job").addEventListener("submit", makeVideo);
  $("cancel").addEventListener("click", cancelJob);
  $("approve").addEventListener("click", approveJob);
  $("video-model").addEventListener("input", describeRenderer);
  setUpGrid(gridHelpers);
  setUpResults();
  $("auth-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  localStorage.removeItem("kapsule-key"); // left by older versions of this page
  let signedIn = true;
  try {
    const health = await api("GET", "/v1/healthz");
    needsKey = health.auth === "api-keys";
    maxUploadBytes = health.max_upload_bytes;
    defaultVideoModel = health.video_model || "local";
    $("limit").textContent = `, up to ${humanBytes(maxUploadBytes)}`;
    $("health").textContent = `Kapsule ${health.version}`;
    if (needsKey) signedIn = (await fetch("/v1/session")).ok;
  } catch (e) {
    showError(e.message);
  }
  describeRenderer();
  if (needsKey) showSignedIn(signedIn);
  if (signedIn) loadJobs();
}

start();
