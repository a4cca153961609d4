// The store list's live vacancy: the doors publish, the service streams each store's symbol with the
// guide's words for it, and both change together without a reload.
"use strict";
new EventSource("/live/seats").addEventListener("seats", (e) => {
  for (const [store, shown] of Object.entries(JSON.parse(e.data))) {
    const symbol = document.querySelector(`td[data-store="${CSS.escape(store)}"]`);
    const words = document.querySelector(`td[data-words="${CSS.escape(store)}"]`);
    if (symbol) symbol.textContent = shown.symbol;
    if (words) {
      const [ja, en] = shown.words;
      const jaSpan = document.createElement("span");
      jaSpan.className = "ja";
      jaSpan.textContent = ja;
      const enSpan = document.createElement("span");
      enSpan.className = "en";
      enSpan.textContent = en;
      words.replaceChildren(jaSpan, enSpan);
    }
  }
});
