// The beat grid of a job awaiting approval: drawn over the song's energy, heard with the click track,
// and fixed with double / half / move the bar line / set BPM, each re-planning the storyboard for free
// (POST /v1/jobs/{id}:regrid). app.js calls showGrid(job, helpers) from the review panel.
"use strict";

function drawGrid(canvas, analysis, review) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 120;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const x = (t) => (t / analysis.duration) * width;
  // The song's loudness as an envelope: where the music is.
  g.fillStyle = "#d9d3f5";
  g.beginPath();
  g.moveTo(0, height / 2);
  const { times, values } = analysis.energy;
  times.forEach((t, i) => g.lineTo(x(t), height / 2 - values[i] * height * 0.42));
  for (let i = times.length - 1; i >= 0; i--) g.lineTo(x(times[i]), height / 2 + values[i] * height * 0.42);
  g.closePath();
  g.fill();
  g.strokeStyle = "#00000040";
  g.lineWidth = 1;
  for (const t of analysis.beats) {
    g.beginPath(); g.moveTo(x(t), height * 0.25); g.lineTo(x(t), height * 0.75); g.stroke();
  }
  g.strokeStyle = "#c62828";
  g.lineWidth = 2;
  for (const t of analysis.downbeats) {
    g.beginPath(); g.moveTo(x(t), height * 0.1); g.lineTo(x(t), height * 0.9); g.stroke();
  }
  g.fillStyle = "#5b3cc4";  // the storyboard's cuts, as triangles on top
  for (const shot of review.shots.slice(1)) {
    g.beginPath(); g.moveTo(x(shot.start) - 5, 0); g.lineTo(x(shot.start) + 5, 0); g.lineTo(x(shot.start), 8); g.fill();
  }
}

async function showGrid(job, helpers) {
  const box = document.getElementById("grid");
  box.hidden = false;
  const [analysis, review] = await Promise.all([
    helpers.api("GET", `/v1/jobs/${job.id}/analysis`),
    helpers.api("GET", `/v1/jobs/${job.id}/storyboard`),
  ]);
  const sure = analysis.confidence >= 0.8 ? "" : " The grid is uncertain: cuts stay on beats every reading shares.";
  document.getElementById("grid-summary").textContent =
    `${analysis.tempo.toFixed(1)} BPM, ${analysis.beats_per_bar} beats per bar, ` +
    `confidence ${analysis.confidence.toFixed(2)}.${sure} Red lines are bar lines, grey lines beats, ` +
    `purple marks the cuts. Listen to the clicks: if they are off, fix the grid here, for free.`;
  drawGrid(document.getElementById("grid-canvas"), analysis, review);
  const audio = document.getElementById("grid-click");
  audio.src = await helpers.protectedUrl(`/v1/jobs/${job.id}/click`);
  box.dataset.job = job.id;
}

async function regrid(change, helpers) {
  const box = document.getElementById("grid");
  const id = box.dataset.job;
  if (!id) return;
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    await helpers.api("POST", `/v1/jobs/${id}:regrid`, change);
    await helpers.refresh(id);
  } catch (e) {
    helpers.showError(e.message);
  } finally {
    for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
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
}
