// A finished job in the studio: the video (with its poster, captions never shown twice), every
// download, the shots with their re-roll (new prompt, new seed), a before/after of a re-rolled shot,
// and the past videos. app.js calls showResultOrKeep(job) and setUpResults(); these use its helpers.
"use strict";

let shotsShownFor = null;
let nextCursor = null;

function showResultOrKeep(job) {
  if (job.state === "succeeded") return showResult(job);
  // A re-roll in progress keeps its parent's video on screen until the new one is ready.
  const parent = job.reroll && job.reroll.parent_job;
  if (parent && $("video").dataset.job === parent && !FINISHED.has(job.state)) {
    $("result").hidden = false;
    $("result-note").hidden = false;
    $("result-note").textContent = `Shot ${job.reroll.shot + 1} is being made again: this is the previous version until the new one is ready.`;
    return;
  }
  $("result").hidden = true;
}

function showResult(job) {
  $("result-note").hidden = true;
  if (!$("result").hidden && $("video").dataset.job === job.id) return;
  $("result").hidden = false;
  const video = $("video");
  video.dataset.job = job.id;
  const url = `/v1/jobs/${job.id}/video`; // the session cookie authorizes media requests too
  video.poster = job.outputs && job.outputs.poster ? `/v1/jobs/${job.id}/poster.jpg` : "";
  video.src = url;
  video.replaceChildren();
  if (job.outputs && job.outputs.captions_vtt) {
    // Lyrics show once: the caption track is on only when nothing is burned into the picture.
    const track = document.createElement("track");
    track.kind = "captions";
    track.label = "Lyrics";
    track.srclang = "und";
    track.src = `/v1/jobs/${job.id}/captions.vtt`;
    track.default = !["burned", "both"].includes(job.outputs.captions);
    video.appendChild(track);
  }
  showDownloads(job);
  showShots(job);
  showCompare(job);
  showNotebooks(job);
}

function link(href, text, download) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (download) a.download = download;
  return a;
}

function showDownloads(job) {
  const stem = (job.params.song || "kapsule").replace(/\.[^.]+$/, "");
  const items = [link(`/v1/jobs/${job.id}/video`, "The video (MP4)", `${stem}.mp4`)];
  items[0].id = "download";
  const outputs = job.outputs || {};
  if (outputs.captions_srt) items.push(link(`/v1/jobs/${job.id}/captions.srt`, "Lyrics as subtitles (.srt)", `${stem}.srt`));
  if (outputs.captions_vtt) items.push(link(`/v1/jobs/${job.id}/captions.vtt`, "Lyrics for the web (.vtt)", `${stem}.vtt`));
  if (outputs.contact_sheet) items.push(link(`/v1/jobs/${job.id}/contact-sheet.jpg`, "Contact sheet, one picture per shot (JPEG)", `${stem}-shots.jpg`));
  if (outputs.poster) items.push(link(`/v1/jobs/${job.id}/poster.jpg`, "Poster frame (JPEG)", `${stem}-poster.jpg`));
  $("downloads").replaceChildren(...items.map((a) => { const li = document.createElement("li"); li.append(a); return li; }));
}

function showNotebooks(job) {
  const list = $("notebooks");
  list.replaceChildren();
  for (const [name, label] of NOTEBOOKS) {
    const li = document.createElement("li");
    // A re-roll skips the analysis and storyboard: those notebooks are its parent's.
    const parent = job.reroll && job.reroll.parent_job;
    const owner = parent && (name === "01_analyze" || name === "02_storyboard") ? parent : job.id;
    const a = link(`/v1/jobs/${owner}/notebooks/${name}`, label);
    a.target = "_blank";
    a.rel = "noopener";
    a.addEventListener("click", (e) => { e.preventDefault(); openNotebook(a.getAttribute("href"), label); });
    li.append(a);
    list.append(li);
  }
}

async function openNotebook(href, label) {
  // A signed link shown in a frame with no permissions: its own opaque origin, no scripts, so a
  // notebook's content can neither read this page nor act as the signed-in user.
  try {
    const signed = await api("GET", `${href}/link`);
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.title = label;
    frame.src = signed.url;
    $("notebook-title").textContent = label;
    $("notebook-frame").replaceChildren(frame);
    $("notebook-view").hidden = false;
  } catch (e) {
    showError(e.message);
  }
}

// ---------------------------------------------------------------------------------- shots, re-roll

async function showShots(job) {
  if (shotsShownFor === job.id) return;
  shotsShownFor = job.id;
  const list = $("shots");
  try {
    const review = await api("GET", `/v1/jobs/${job.id}/storyboard`);
    const hadFocus = list.contains(document.activeElement); // a re-roll button about to be replaced
    list.replaceChildren(...review.shots.map((shot) => shotItem(job, shot)));
    if (hadFocus) $("job-title").focus({ preventScroll: true });
  } catch (e) {
    shotsShownFor = null;
    showError(e.message);
  }
}

function shotItem(job, shot) {
  const li = document.createElement("li");
  const text = document.createElement("span");
  text.textContent = `${shot.prompt} `;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `(${shotMeta(shot)})`;
  const more = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = `Re-roll shot ${shot.number}`;
  const promptLabel = document.createElement("label");
  promptLabel.htmlFor = `reroll-prompt-${shot.number}`;
  promptLabel.textContent = `New prompt for shot ${shot.number}`;
  const prompt = document.createElement("textarea");
  prompt.id = `reroll-prompt-${shot.number}`;
  prompt.rows = 2;
  prompt.maxLength = 2000;
  prompt.value = shot.prompt;
  const seedLabel = document.createElement("label");
  seedLabel.htmlFor = `reroll-seed-${shot.number}`;
  seedLabel.textContent = "Seed (empty: a new random one)";
  const seed = document.createElement("input");
  seed.id = `reroll-seed-${shot.number}`;
  seed.type = "number";
  seed.min = "0";
  seed.step = "1";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.textContent = `Make shot ${shot.number} again (${money(shot.cost_usd)})`;
  button.addEventListener("click", () => {
    const body = {};
    if (prompt.value.trim() && prompt.value.trim() !== shot.prompt.trim()) body.prompt = prompt.value;
    if (seed.value.trim() !== "") body.seed = Number(seed.value);
    rerollShot(job.id, shot.index, body, button);
  });
  more.append(summary, promptLabel, prompt, seedLabel, seed, button);
  li.append(text, meta, more);
  return li;
}

async function rerollShot(jobId, index, body, button) {
  showError("");
  button.disabled = true;
  try {
    const job = await api("POST", `/v1/jobs/${jobId}/shots/${index}:reroll`, body);
    showJob(job);
    loadJobs();
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
    if (document.activeElement === document.body) button.focus();
  }
}

async function showCompare(job) {
  // A finished re-roll: the changed shot before (the parent's video) and after, side by side, each
  // playing only that shot's stretch of the song (a media fragment).
  const box = $("compare");
  box.hidden = true;
  if (!job.reroll) return;
  try {
    const review = await api("GET", `/v1/jobs/${job.id}/storyboard`);
    const shot = review.shots.find((s) => s.index === job.reroll.shot);
    if (!shot) return;
    const span = `#t=${shot.start.toFixed(3)},${shot.end.toFixed(3)}`;
    $("compare-title").textContent = `Shot ${shot.number}, before and after`;
    $("before").src = `/v1/jobs/${job.reroll.parent_job}/video${span}`;
    $("after").src = `/v1/jobs/${job.id}/video${span}`;
    $("before").setAttribute("aria-label", `Shot ${shot.number} before the re-roll`);
    $("after").setAttribute("aria-label", `Shot ${shot.number} after the re-roll`);
    box.hidden = false;
  } catch (e) {
    showError(e.message);
  }
}

// ---------------------------------------------------------------------------------- past videos

function jobLabel(job) {
  const when = new Date(job.created_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const seconds = Number((job.outputs && job.outputs.duration) || job.song_seconds || 0);
  const length = seconds ? `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}` : "";
  const again = job.reroll ? ` (shot ${job.reroll.shot + 1} again)` : "";
  return [`${job.params.song || job.id}${again}`, stateLabel(job.state), length, when].filter(Boolean).join(" — ");
}

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
      if (job.outputs && job.outputs.poster) {
        const img = document.createElement("img");
        img.src = `/v1/jobs/${job.id}/poster.jpg`;
        img.alt = "";
        img.loading = "lazy";
        b.append(img);
      }
      const text = document.createElement("span");
      text.textContent = jobLabel(job);
      b.append(text);
      b.addEventListener("click", async () => {
        showError("");
        showJob(await api("GET", `/v1/jobs/${job.id}`));
        $("job").scrollIntoView({ block: "start" });
        $("job-title").focus({ preventScroll: true });
      });
      li.append(b);
      list.append(li);
    }
    if (!list.children.length) list.innerHTML = "<li>No videos yet.</li>";
    $("more").hidden = !nextCursor;
  } catch (e) {
    showError(e.message);
  }
}

function setUpResults() {
  $("more").addEventListener("click", () => loadJobs(true));
  $("notebook-close").addEventListener("click", () => { $("notebook-view").hidden = true; $("notebook-frame").replaceChildren(); });
}
