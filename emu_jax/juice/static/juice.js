// JUICE rating page: refuse incomplete votes on the page, keyboard shortcuts, GIF fallback.
// The server validates again; this only saves raters a round trip.
(function () {
  "use strict";
  var form = document.getElementById("vote-form");
  if (!form) { return; }
  var message = document.getElementById("message");
  var submitted = false;

  function showMessage(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function problems() {
    var out = [];
    form.querySelectorAll("fieldset.question").forEach(function (fs) {
      var q = fs.getAttribute("data-question");
      var label = fs.getAttribute("data-label");
      if (!fs.querySelector('input[name="' + q + '"]:checked')) {
        out.push("Pick a winner for " + label + ".");
      }
      if (!fs.querySelector('input[name="' + q + '_reasons"]:checked')) {
        out.push("Tick at least one reason for " + label + ".");
      }
    });
    return out;
  }

  form.addEventListener("submit", function (event) {
    if (submitted) {
      event.preventDefault();
      return;
    }
    var errs = problems();
    if (errs.length) {
      event.preventDefault();
      showMessage(errs.join(" "));
      return;
    }
    showMessage("");
    // A second Enter while the post is in flight must not send the vote twice.
    submitted = true;
    document.getElementById("submit").disabled = true;
  });

  form.addEventListener("change", function () {
    if (!message.hidden && problems().length === 0) { showMessage(""); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    var key = event.key.length === 1 ? event.key.toLowerCase() : "";
    if (!key) { return; }
    var input = form.querySelector('input[data-key="' + CSS.escape(key) + '"]');
    if (!input) { return; }
    event.preventDefault();
    input.checked = input.type === "radio" ? true : !input.checked;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // Browsers without H.264 show the GIF the sampler wrote instead (the server offers one for both
  // videos or for neither, so the fallback never tells the systems apart).
  document.querySelectorAll("video[data-gif]").forEach(function (video) {
    video.addEventListener("error", function () {
      var img = document.createElement("img");
      img.src = video.getAttribute("data-gif");
      img.alt = video.id;
      img.id = video.id + "-gif";
      video.replaceWith(img);
    });
  });
})();
