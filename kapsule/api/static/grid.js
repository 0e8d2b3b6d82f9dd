// The beat grid of a job awaiting approval: drawn over the song's energy with a time axis and bar
// numbers, heard with the click track (a playhead follows it; a click on the drawing seeks), and
// fixed with double / half / move the bar line / set BPM, each re-planning the storyboard for free
// (POST /v1/jobs/{id}:regrid). When the analysis was unsure, each reading it heard can be played:
// the song with that reading's clicks on top (Web Audio). app.js calls showGrid(job, helpers).
"use strict";

const SURE = 0.8; // below this the analysis is unsure (kapsule.analysis's threshold for the warning)
const gridState = { analysis: null, review: null, readings: [], playing: null, frame: 0 };

// ------------------------------------------------------------------------------------- readings

function readingsFor(jobId, analysis) {
  // The readings the first analysis heard (the chosen one and its runner-ups). A grid change
  // rewrites the analysis as "sure" (a person chose), so the first one is kept in this tab to
  // recompute the confidence of whichever grid is shown.
  const key = `kapsule-readings-${jobId}`;
  const kept = sessionStorage.getItem(key);
  if (kept) return JSON.parse(kept);
  const readings = [
    { kind: "chosen", plausibility: 1, tempo: analysis.tempo, beats_per_bar: analysis.beats_per_bar,
      beats: analysis.beats, downbeats: analysis.downbeats },
    ...analysis.alternatives,
  ];
  try { sessionStorage.setItem(key, JSON.stringify(readings)); } catch (_) { /* full: recompute less */ }
  return readings;
}

function sameGrid(reading, analysis) {
  if (reading.beats_per_bar !== analysis.beats_per_bar) return false;
  if (Math.abs(reading.tempo - analysis.tempo) > analysis.tempo * 0.02) return false;
  const near = (t) => reading.downbeats.some((d) => Math.abs(d - t) < 0.07);
  return analysis.downbeats.slice(0, 4).every(near);
}

function confidenceShown(analysis, readings) {
  // The shown grid's share of all the readings' plausibility: for the first analysis's own choice this
  // is its confidence (1 / (1 + the runner-ups' plausibilities)); for a runner-up chosen by hand it is
  // that runner-up's share. A grid no reading matches (a typed BPM) keeps the analysis's own figure.
  const total = readings.reduce((sum, r) => sum + r.plausibility, 0);
  const shown = readings.find((r) => sameGrid(r, analysis));
  return shown && total > 0 ? { value: shown.plausibility / total, shown } : { value: analysis.confidence, shown: null };
}

const describeReading = (r) => `${r.tempo.toFixed(1)} BPM, ${r.beats_per_bar} beats per bar`;

// ------------------------------------------------------------------------------------- drawing

function drawGrid(canvas, analysis, review, playhead) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 140;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const axis = 18; // the time axis along the bottom
  const top = 14; // bar numbers along the top
  const plot = height - axis - top;
  const mid = top + plot / 2;
  const x = (t) => (t / analysis.duration) * width;
  const label = (text, at, y) => {  // kept inside the drawing at both ends
    g.textAlign = at < 12 ? "left" : at > width - 16 ? "right" : "center";
    g.fillText(text, at, y);
  };
  // The song's loudness as an envelope: where the music is.
  g.fillStyle = "#d9d3f5";
  g.beginPath();
  g.moveTo(0, mid);
  const { times, values } = analysis.energy;
  times.forEach((t, i) => g.lineTo(x(t), mid - values[i] * plot * 0.45));
  for (let i = times.length - 1; i >= 0; i--) g.lineTo(x(times[i]), mid + values[i] * plot * 0.45);
  g.closePath();
  g.fill();
  g.strokeStyle = "#00000040";
  g.lineWidth = 1;
  for (const t of analysis.beats) {
    g.beginPath(); g.moveTo(x(t), top + plot * 0.25); g.lineTo(x(t), top + plot * 0.75); g.stroke();
  }
  // Bar lines, numbered (every bar when there is room, else every 2nd, 4th, …).
  g.strokeStyle = "#c62828";
  g.lineWidth = 2;
  g.fillStyle = "#1b1b1f";
  g.font = "11px system-ui, sans-serif";
  const barWidth = analysis.downbeats.length > 1 ? x(analysis.downbeats[1]) - x(analysis.downbeats[0]) : width;
  const every = Math.max(1, 2 ** Math.ceil(Math.log2(Math.max(1, 22 / Math.max(barWidth, 1)))));
  analysis.downbeats.forEach((t, i) => {
    g.beginPath(); g.moveTo(x(t), top + plot * 0.08); g.lineTo(x(t), top + plot * 0.92); g.stroke();
    if (i % every === 0) label(String(i + 1), x(t), top - 3);
  });
  g.fillStyle = "#5b3cc4"; // the storyboard's cuts, as triangles under the bar numbers
  for (const shot of review.shots.slice(1)) {
    g.beginPath(); g.moveTo(x(shot.start) - 5, top); g.lineTo(x(shot.start) + 5, top); g.lineTo(x(shot.start), top + 8); g.fill();
  }
  // The time axis: a tick every 1, 2, 5, 10, 15, 30 or 60 s, whichever leaves ~60 px between labels.
  const step = [1, 2, 5, 10, 15, 30, 60].find((s) => x(s) >= 60) || 60;
  g.fillStyle = "#5b5b66";
  g.strokeStyle = "#5b5b66";
  g.lineWidth = 1;
  g.beginPath(); g.moveTo(0, height - axis); g.lineTo(width, height - axis); g.stroke();
  for (let t = 0; t <= analysis.duration; t += step) {
    g.beginPath(); g.moveTo(x(t), height - axis); g.lineTo(x(t), height - axis + 4); g.stroke();
    label(`${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}`, x(t), height - 3);
  }
  if (playhead !== null) {
    g.strokeStyle = "#0a7d32";
    g.lineWidth = 2;
    g.beginPath(); g.moveTo(x(playhead), top); g.lineTo(x(playhead), height - axis); g.stroke();
  }
}

function redraw() {
  const { analysis, review, playing } = gridState;
  if (!analysis) return;
  const audio = playing || document.getElementById("grid-click");
  const playhead = audio && (audio.currentTime > 0 || !audio.paused) ? audio.currentTime : null;
  drawGrid(document.getElementById("grid-canvas"), analysis, review, playhead);
}

function followPlayhead() {
  cancelAnimationFrame(gridState.frame);
  const tick = () => {
    redraw();
    const audio = gridState.playing || document.getElementById("grid-click");
    if (audio && !audio.paused) gridState.frame = requestAnimationFrame(tick);
  };
  tick();
}

// ------------------------------------------------------------------- a reading's clicks, Web Audio

let audioContext = null;

function playReading(reading, song, button) {
  // The song (its own <audio>), and a click scheduled on each of the reading's beats a little ahead
  // of the song's clock, the bar lines accented.
  const click = document.getElementById("grid-click");
  click.pause();
  if (gridState.playing === song && !song.paused && song.dataset.reading === reading.kind) {
    song.pause();
    return;
  }
  audioContext = audioContext || new AudioContext();
  song.dataset.reading = reading.kind;
  gridState.playing = song;
  const downbeats = new Set(reading.downbeats.map((t) => t.toFixed(3)));
  let next = reading.beats.findIndex((t) => t >= song.currentTime);
  const schedule = () => {
    if (song.paused || song.dataset.reading !== reading.kind) return;
    const now = song.currentTime;
    while (next >= 0 && next < reading.beats.length && reading.beats[next] < now + 0.25) {
      const at = audioContext.currentTime + Math.max(0, reading.beats[next] - now);
      const osc = audioContext.createOscillator();
      const gain = audioContext.createGain();
      osc.frequency.value = downbeats.has(reading.beats[next].toFixed(3)) ? 1760 : 1100;
      gain.gain.setValueAtTime(0.5, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + 0.05);
      osc.connect(gain).connect(audioContext.destination);
      osc.start(at);
      osc.stop(at + 0.06);
      next += 1;
    }
    setTimeout(schedule, 100);
  };
  song.onseeked = () => { next = reading.beats.findIndex((t) => t >= song.currentTime); };
  song.onplay = () => { audioContext.resume(); schedule(); followPlayhead(); };
  song.play().catch((e) => { button.setAttribute("aria-pressed", "false"); throw e; });
}

function showReadings(job, readings, sureBefore) {
  const box = document.getElementById("grid-readings");
  box.replaceChildren();
  box.hidden = sureBefore || readings.length < 2;
  if (box.hidden) return;
  const song = document.createElement("audio");
  song.src = `/v1/jobs/${job.id}/song`;
  song.preload = "none";
  const intro = document.createElement("p");
  intro.className = "hint";
  intro.textContent = "Hear each reading the analysis considered (the song with its clicks):";
  box.append(intro);
  for (const reading of readings) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.dataset.reading = reading.kind;
    b.textContent = `Play ${describeReading(reading)}`;
    b.addEventListener("click", () => playReading(reading, song, b));
    box.append(b);
  }
}

// ------------------------------------------------------------------------------------ the panel

async function showGrid(job, helpers) {
  const box = document.getElementById("grid");
  box.hidden = false;
  const [analysis, review] = await Promise.all([
    helpers.api("GET", `/v1/jobs/${job.id}/analysis`),
    helpers.api("GET", `/v1/jobs/${job.id}/storyboard`),
  ]);
  const readings = readingsFor(job.id, analysis);
  const first = readings.reduce((sum, r) => sum + r.plausibility, 0);
  const sureBefore = readings.length < 2 || 1 / first >= SURE;
  const { value, shown } = confidenceShown(analysis, readings);
  gridState.analysis = analysis;
  gridState.review = review;
  gridState.readings = readings;
  document.getElementById("grid-summary").textContent =
    `${describeReading(analysis)}, confidence ${value.toFixed(2)}. Red lines are bar lines (numbered), ` +
    `grey lines beats, purple marks the cuts. Play the clicks, or click the drawing to jump there: if ` +
    `they are off, fix the grid here, for free.`;
  const warning = document.getElementById("grid-warning");
  const others = readings.filter((r) => r !== shown && !(shown === null && r.kind === "chosen"));
  warning.hidden = value >= SURE || others.length === 0;
  warning.textContent = `The grid is uncertain: the analysis also heard ${others.map(describeReading).join(" and ")}. ` +
    "Cuts stay on beats every reading shares; listen to each below and keep the one that fits.";
  document.getElementById("grid-canvas").setAttribute("aria-label",
    `Beat grid: ${describeReading(analysis)}, ${analysis.downbeats.length} bars over ` +
    `${Math.round(analysis.duration)} s, ${review.shots.length} shots`);
  document.getElementById("grid-bpm").value = analysis.tempo.toFixed(1);
  redraw();
  showReadings(job, readings, sureBefore);
  const audio = document.getElementById("grid-click");
  audio.src = await helpers.protectedUrl(`/v1/jobs/${job.id}/click`);
  box.dataset.job = job.id;
}

async function regrid(change, helpers) {
  const box = document.getElementById("grid");
  const id = box.dataset.job;
  if (!id) return;
  const focused = document.activeElement;
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  helpers.replanning();
  try {
    await helpers.api("POST", `/v1/jobs/${id}:regrid`, change);
    await helpers.refresh(id);
  } catch (e) {
    helpers.showError(e.message);
  } finally {
    for (const b of box.querySelectorAll("button")) b.disabled = false;
    helpers.settled();
    // A disabled button loses the keyboard's focus: give it back to the button that was pressed.
    if (focused && document.body.contains(focused) && document.activeElement !== focused) focused.focus();
  }
}

function seekTo(event) {
  const { analysis } = gridState;
  if (!analysis) return;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const t = ((event.clientX - rect.left) / rect.width) * analysis.duration;
  const audio = gridState.playing && !gridState.playing.paused ? gridState.playing : document.getElementById("grid-click");
  audio.currentTime = Math.max(0, Math.min(analysis.duration, t));
  redraw();
}

function setUpGrid(helpers) {
  document.getElementById("grid-double").addEventListener("click", () => regrid({ tempo: "double" }, helpers));
  document.getElementById("grid-half").addEventListener("click", () => regrid({ tempo: "half" }, helpers));
  document.getElementById("grid-earlier").addEventListener("click", () => regrid({ shift_beats: -1 }, helpers));
  document.getElementById("grid-later").addEventListener("click", () => regrid({ shift_beats: 1 }, helpers));
  document.getElementById("grid-set-bpm").addEventListener("click", () => {
    const bpm = Number(document.getElementById("grid-bpm").value);
    if (!(bpm >= 30 && bpm <= 300)) return helpers.showError("Give a tempo between 30 and 300 BPM.");
    return regrid({ bpm }, helpers);
  });
  const canvas = document.getElementById("grid-canvas");
  canvas.addEventListener("click", seekTo);
  canvas.addEventListener("keydown", (e) => {  // arrows move the click track by a bar
    const audio = document.getElementById("grid-click");
    const bar = gridState.analysis ? (60 / gridState.analysis.tempo) * gridState.analysis.beats_per_bar : 2;
    if (e.key === "ArrowRight") audio.currentTime += bar;
    else if (e.key === "ArrowLeft") audio.currentTime = Math.max(0, audio.currentTime - bar);
    else return;
    e.preventDefault();
    redraw();
  });
  const click = document.getElementById("grid-click");
  click.addEventListener("play", () => { gridState.playing = null; followPlayhead(); });
  click.addEventListener("seeked", redraw);
  window.addEventListener("resize", redraw);
}
