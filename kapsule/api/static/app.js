// Kapsule studio: upload a song, start a job, follow it, play and download the video.
// Uses only the public /v1 API (see /docs). No build step, no dependencies.
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
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// awaiting_approval is not finished: the page keeps following the job through the approval.
const $ = (id) => document.getElementById(id);

let needsKey = false;
let maxUploadBytes = 0;
let current = null; // the job shown
let follow = null; // EventSource or interval id
let nextCursor = null;

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

function putWithProgress(ticket, file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(ticket.method, ticket.url);
    for (const [name, value] of Object.entries(ticket.headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $("upload-progress").value = e.loaded / e.total;
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = `The upload failed (${xhr.status}).`;
      try { message = JSON.parse(xhr.responseText).error.message; } catch (_) { /* not JSON (GCS XML) */ }
      reject(new Error(message));
    };
    xhr.onerror = () => reject(new Error("The upload was interrupted; check the connection and try again."));
    xhr.send(file);
  });
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
  $("upload-box").hidden = false;
  $("upload-progress").value = 0;
  try {
    const ticket = await api("POST", "/v1/uploads", {
      filename: file.name,
      content_type: file.type || "application/octet-stream",
      size: file.size,
    });
    await putWithProgress(ticket, file);
    $("upload-progress").value = 1;
    const body = {
      upload_id: ticket.upload_id,
      prompt: $("prompt").value,
      style: $("style").value,
      aspect_ratio: $("aspect").value,
      review: $("review-first").checked,
    };
    if ($("lyrics").value.trim()) body.lyrics_text = $("lyrics").value; // timed or aligned by the job
    const job = await api("POST", "/v1/jobs", body, { "Idempotency-Key": ticket.upload_id });
    showJob(job);
    loadJobs();
  } catch (e) {
    showError(e.message);
  } finally {
    $("make").disabled = false;
    $("upload-box").hidden = true;
  }
}

// ------------------------------------------------------------------------------------ one job

function stageFraction(index, progress) {
  const before = STAGES.slice(0, index).reduce((sum, s) => sum + s[2], 0);
  return Math.min(1, Math.max(0, (progress - before) / STAGES[index][2]));
}

function renderStages(job) {
  const list = $("stages");
  list.replaceChildren();
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
    note.textContent = fraction >= 1 ? "done" : job.stage === stage && !FINISHED.has(job.state)
      ? `${Math.round(fraction * 100)} %` : "";
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

function showJob(job) {
  const changed = !current || current.id !== job.id;
  current = job;
  $("job").hidden = false;
  $("job-song").textContent = job.params.song || job.id;
  $("job-state").textContent = job.state.replace("_", " ");
  const error = job.error ? ` — ${job.error.message}` : "";
  $("job-message").textContent = (job.message || "") + error;
  $("cancel").hidden = FINISHED.has(job.state);
  renderStages(job);
  if (job.state === "awaiting_approval") showReview(job);
  else $("review").hidden = true;
  if (job.state === "failed") showError(`The video could not be made: ${job.error ? job.error.message : job.message}`);
  if (job.state === "succeeded") showResult(job);
  else $("result").hidden = true;
  const moving = !FINISHED.has(job.state) && job.state !== "awaiting_approval";
  if (changed) {
    stopFollowing();
    if (moving) startFollowing(job.id);
  } else if (FINISHED.has(job.state)) {
    stopFollowing();
    loadJobs();
  } else if (moving && !follow) {
    startFollowing(job.id); // approved: the stream ended at the pause, follow the job again
  }
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

async function openNotebook(href, label) {
  // A signed link shown in a frame with no permissions: its own opaque origin, no scripts, so a
  // notebook's content can neither read this page nor act as the signed-in user.
  try {
    const link = await api("GET", `${href}/link`);
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = label;
    frame.src = link.url;
    $("notebook-title").textContent = label;
    $("notebook-frame").replaceChildren(frame);
    $("notebook-view").hidden = false;
  } catch (e) {
    showError(e.message);
  }
}

async function showResult(job) {
  if (!$("result").hidden && $("video").dataset.job === job.id) return;
  $("result").hidden = false;
  $("video").dataset.job = job.id;
  const url = `/v1/jobs/${job.id}/video`; // the session cookie authorizes media requests too
  $("video").src = url;
  $("video").replaceChildren(); // the lyric captions, when the job delivered a WebVTT file
  if (job.outputs && job.outputs.captions_vtt) {
    const track = document.createElement("track");
    track.kind = "captions";
    track.label = "Lyrics";
    track.srclang = "und";
    track.src = `/v1/jobs/${job.id}/captions.vtt`;
    track.default = true;
    $("video").appendChild(track);
  }
  $("download").href = url;
  $("download").download = `${(job.params.song || "kapsule").replace(/\.[^.]+$/, "")}.mp4`;
  showShots(job);
  const list = $("notebooks");
  list.replaceChildren();
  for (const [name, label] of NOTEBOOKS) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = label;
    a.target = "_blank";
    a.rel = "noopener";
    // A re-roll skips the analysis and storyboard: those notebooks are its parent's.
    const parent = job.reroll && job.reroll.parent_job;
    const owner = parent && (name === "01_analyze" || name === "02_storyboard") ? parent : job.id;
    a.href = `/v1/jobs/${owner}/notebooks/${name}`;
    a.addEventListener("click", (e) => { e.preventDefault(); openNotebook(a.getAttribute("href"), label); });
    li.append(a);
    list.append(li);
  }
}

async function cancelJob() {
  if (!current) return;
  try {
    showJob(await api("POST", `/v1/jobs/${current.id}:cancel`));
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------- review before paying, re-roll

const money = (usd) => `$${Number(usd).toFixed(2)}`;
let reviewShownFor = null;
let shotsShownFor = null;

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
    list.replaceChildren();
    for (const shot of review.shots) {
      const li = document.createElement("li");
      const label = document.createElement("label");
      label.htmlFor = `shot-prompt-${shot.index}`;
      label.textContent = `Shot ${shot.index} prompt`;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.id = `shot-meta-${shot.index}`;
      meta.textContent = shotMeta(shot);
      const text = document.createElement("textarea");
      text.id = `shot-prompt-${shot.index}`;
      text.rows = 2;
      text.maxLength = 2000;
      text.value = shot.prompt;
      text.dataset.index = shot.index;
      text.dataset.original = shot.prompt;
      text.setAttribute("aria-describedby", meta.id);
      li.append(label, meta, text);
      list.append(li);
    }
  } catch (e) {
    reviewShownFor = null;
    showError(e.message);
  }
}

const gridHelpers = {
  api: (...args) => api(...args),
  protectedUrl: async (path) => path,  // the session cookie goes with media requests too
  showError: (message) => showError(message),
  refresh: async (id) => {  // the grid changed: the storyboard and its cost are new, show them again
    reviewShownFor = null;
    await showReview(await api("GET", `/v1/jobs/${id}`));
  },
};

async function approveJob() {
  if (!current) return;
  showError("");
  const prompts = {};
  for (const text of $("review-shots").querySelectorAll("textarea")) {
    if (text.value.trim() !== text.dataset.original.trim()) prompts[text.dataset.index] = text.value;
  }
  $("approve").disabled = true;
  try {
    showJob(await api("POST", `/v1/jobs/${current.id}:approve`, { prompts }));
  } catch (e) {
    showError(e.message);
  } finally {
    $("approve").disabled = false;
  }
}

async function showShots(job) {
  if (shotsShownFor === job.id) return;
  shotsShownFor = job.id;
  const list = $("shots");
  list.replaceChildren();
  try {
    const review = await api("GET", `/v1/jobs/${job.id}/storyboard`);
    for (const shot of review.shots) {
      const li = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = `${shot.prompt} `;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `(${shotMeta(shot)})`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Re-roll";
      button.setAttribute("aria-label", `Re-roll shot ${shot.index} (${money(shot.cost_usd)})`);
      button.addEventListener("click", () => rerollShot(job.id, shot.index, button));
      li.append(text, meta, document.createElement("br"), button);
      list.append(li);
    }
  } catch (e) {
    shotsShownFor = null;
    showError(e.message);
  }
}

async function rerollShot(jobId, index, button) {
  showError("");
  button.disabled = true;
  try {
    const job = await api("POST", `/v1/jobs/${jobId}/shots/${index}:reroll`, {});
    showJob(job);
    loadJobs();
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------- past jobs

async function loadJobs(more = false) {
  try {
    const query = more && nextCursor ? `&cursor=${encodeURIComponent(nextCursor)}` : "";
    const page = await api("GET", `/v1/jobs?limit=10${query}`);
    nextCursor = page.next_cursor;
    const list = $("jobs");
    if (!more) list.replaceChildren();
    for (const job of page.jobs) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      const when = new Date(job.created_at).toLocaleString();
      b.textContent = `${job.params.song || job.id} — ${job.state.replace("_", " ")} — ${when}`;
      b.addEventListener("click", async () => { showError(""); showJob(await api("GET", `/v1/jobs/${job.id}`)); });
      li.append(b);
      list.append(li);
    }
    if (!list.children.length) list.innerHTML = "<li>No videos yet.</li>";
    $("more").hidden = !nextCursor;
  } catch (e) {
    showError(e.message);
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
  setUpGrid(gridHelpers);
  $("more").addEventListener("click", () => loadJobs(true));
  $("auth-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("notebook-close").addEventListener("click", () => { $("notebook-view").hidden = true; $("notebook-frame").replaceChildren(); });
  localStorage.removeItem("kapsule-key"); // left by older versions of this page
  let signedIn = true;
  try {
    const health = await api("GET", "/v1/healthz");
    needsKey = health.auth === "api-keys";
    maxUploadBytes = health.max_upload_bytes;
    $("limit").textContent = `, up to ${humanBytes(maxUploadBytes)}`;
    $("health").textContent = `Kapsule ${health.version}`;
    if (needsKey) signedIn = (await fetch("/v1/session")).ok;
  } catch (e) {
    showError(e.message);
  }
  if (needsKey) showSignedIn(signedIn);
  if (signedIn) loadJobs();
}

start();
