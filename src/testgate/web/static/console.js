// testgate console: live logs over Server-Sent Events, and copy-to-clipboard. No framework, no build step.
// Every page works without this script; it only adds live updates and the copy button.
"use strict";

function appendLine(log, line) {
  const row = document.createElement("span");
  row.className = line.step < 0 ? "line system" : "line";
  row.dataset.seq = String(line.seq);
  const number = document.createElement("span");
  number.className = "n";
  number.textContent = String(line.seq);
  row.append(number);
  if (line.step >= 0) {
    const step = document.createElement("span");
    step.className = "step";
    step.textContent = String(line.step + 1);
    row.append(step);
  }
  row.append(document.createTextNode(line.text + "\n"));
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(row);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function followLog(log) {
  const url = new URL(log.dataset.stream, window.location.href);
  url.searchParams.set("after", log.dataset.after || "0");
  const source = new EventSource(url);
  const live = document.getElementById("live");
  source.addEventListener("line", (event) => {
    const line = JSON.parse(event.data);
    if (log.querySelector(`[data-seq="${line.seq}"]`)) return;
    appendLine(log, line);
  });
  source.addEventListener("end", () => {
    source.close();
    if (live) live.textContent = "finished";
    // The finished page carries results and artifacts.
    window.location.reload();
  });
  source.addEventListener("error", () => {
    if (live) live.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting";
  });
  source.addEventListener("open", () => {
    if (live) live.textContent = "live";
  });
}

function copyButton(button) {
  button.addEventListener("click", async () => {
    const target = document.getElementById(button.dataset.copy);
    if (!target) return;
    try {
      await navigator.clipboard.writeText(target.textContent.trim());
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (log && log.dataset.stream && "EventSource" in window) followLog(log);
  document.querySelectorAll("button[data-copy]").forEach(copyButton);
});
