// A new code before this one expires: the page fetches itself again and swaps only the code, so
// the screen does not jump or flash while the member holds it to the camera.
"use strict";
const holder = document.querySelector("[data-code]");
const seconds = Number(holder.dataset.refresh) || 45;
setInterval(async () => {
  try {
    const response = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.querySelector("[data-code] img");
    if (fresh) holder.querySelector("img").replaceWith(fresh);
  } catch (error) {
    // Offline for a moment: the next round tries again.
  }
}, seconds * 1000);
