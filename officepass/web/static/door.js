// The door page's live parts.
// - [data-deadline]: the stay's countdown (from the door's deadline), with the guide's warning from
//   data-warning-at (the door's own warning time) and the overdue notice after.
// - [data-watch-door]: after a press that should open the lock, the door's alarms are watched (the
//   door answers before its 1 s bolt check); an unlock_fault goes to the unlock-trouble screen.
"use strict";
// Times the page shows in the phone's own time zone and words (the service sends UTC).
for (const shown of document.querySelectorAll("time[data-local-time]")) {
  const when = new Date(shown.dataset.localTime);
  if (!Number.isNaN(when.getTime())) {
    shown.textContent = when.toLocaleTimeString(document.documentElement.lang === "ja" ? "ja-JP" : "en-GB",
                                                { hour: "2-digit", minute: "2-digit" });
  }
}
for (const clock of document.querySelectorAll("[data-deadline]")) {
  const deadline = Date.parse(clock.dataset.deadline);
  const warningAt = Date.parse(clock.dataset.warningAt);
  const left = clock.querySelector("[data-left]");
  const tick = () => {
    const ms = deadline - Date.now();
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    left.textContent = `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
    clock.dataset.phase = ms <= 0 ? "overdue" : Date.now() >= warningAt ? "warning" : "ok";
  };
  tick();
  setInterval(tick, 1000);
}
for (const watched of document.querySelectorAll("[data-watch-door]")) {
  const source = new EventSource(watched.dataset.watchDoor);
  source.addEventListener("alarms", (e) => {
    if (JSON.parse(e.data).includes("unlock_fault")) {
      source.close();
      location.assign(watched.dataset.troublePage);
    }
  });
  setTimeout(() => source.close(), 20000);  // the bolt check is long done by then
}
