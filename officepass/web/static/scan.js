// The door's QR read by the phone's camera inside the page (jsQR, vendored from npm). A door's code
// holds the URL {base_url}/s/{store}/{door}[?pc=...] (contract §8): the page goes to that door's
// page on this service, its query (a presence code) kept. Anything else is named and ignored.
"use strict";
const DOOR_PATH = /^\/s\/[A-Za-z0-9._-]{1,64}\/[A-Za-z0-9._-]{1,64}$/;
const LOOK_MS = 150;

function doorTarget(text) {
  let url;
  try { url = new URL(text); } catch { return null; }
  return DOOR_PATH.test(url.pathname) ? url.pathname + url.search : null;
}

async function scanDoorCode() {
  const video = document.querySelector("video");
  const note = document.querySelector("[data-scan-note]");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    note.textContent = note.dataset.noCamera;
    return;
  }
  video.srcObject = stream;
  await video.play();
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const look = () => {
    if (video.videoWidth > 0) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const found = jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" });
      const target = found ? doorTarget(found.data) : null;
      if (target) {
        stream.getTracks().forEach((track) => track.stop());
        location.assign(target);
        return;
      }
      if (found) note.textContent = note.dataset.notDoor;
    }
    setTimeout(look, LOOK_MS);
  };
  look();
}

scanDoorCode();
