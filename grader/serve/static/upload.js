// grade serve's upload page, better with JavaScript: a file over the limit is stopped before it is sent, and a
// progress bar shows the upload. Without JavaScript the form posts as a plain form and the server says the same.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var input = document.getElementById("file");
  var bar = document.getElementById("progress");
  var message = document.getElementById("message");
  var maxBytes = Number(form.dataset.maxBytes);
  var suffixes = form.dataset.suffixes.split(" ");

  form.addEventListener("submit", function (event) {
    var file = input.files && input.files[0];
    if (!file) return;
    event.preventDefault();
    var lower = file.name.toLowerCase();
    if (!suffixes.some(function (suffix) { return lower.endsWith(suffix); })) {
      message.textContent = file.name + " is not a model file this page checks (" + suffixes.join(", ") + ").";
      return;
    }
    if (file.size > maxBytes) {
      message.textContent = file.name + " is " + file.size.toLocaleString() + " bytes, over the coursework's limit of " +
        maxBytes.toLocaleString() + " bytes: it cannot be submitted. Make the model smaller (fewer or narrower layers).";
      return;
    }
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", function (progress) {
      if (!progress.lengthComputable) return;
      var percent = Math.floor(100 * progress.loaded / progress.total);
      bar.value = percent;
      message.textContent = percent < 100 ? "Uploading: " + percent + "%" : "Uploaded: waiting for the checker";
    });
    request.addEventListener("load", function () {
      // The server answers a taken upload with a redirect to its page; anything else is a page to show.
      if (request.status === 200 && request.responseURL && request.responseURL !== form.action) {
        window.location.assign(request.responseURL);
      } else {
        document.open();
        document.write(request.responseText);
        document.close();
      }
    });
    request.addEventListener("error", function () {
      message.textContent = "The upload failed (the connection broke): try again.";
      bar.hidden = true;
    });
    bar.hidden = false;
    bar.value = 0;
    message.textContent = "Uploading…";
    request.send(new FormData(form));
  });
})();
