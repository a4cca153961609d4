// The console follows the fleet: when /live/console says something changed, the tables are fetched
// again and swapped in place (the forms being typed into, outside #live, are left alone).
"use strict";
let first = true;
new EventSource(document.getElementById("live").dataset.live).addEventListener("console", async () => {
  if (first) { first = false; return; }  // the page itself is that first state
  const response = await fetch(location.href, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("live");
  const live = document.getElementById("live");
  const typing = document.activeElement && live.contains(document.activeElement);
  if (fresh && !typing) live.replaceWith(fresh);
});
