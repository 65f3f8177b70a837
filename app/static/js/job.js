// Polls the job's status until it is finished; textContent only, so nothing is parsed as HTML.
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job) { return; }
  var url = job.getAttribute("data-status-url");
  var state = document.getElementById("job-state");
  var result = document.getElementById("job-result");
  var error = document.getElementById("job-error");

  function show(status) {
    state.textContent = status.state;
    state.className = "state state-" + status.state.toLowerCase();
    result.textContent = "result" in status ? JSON.stringify(status.result) : "";
    error.textContent = status.error || "";
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status) { show(status); }
        if (!status || !status.ready) { window.setTimeout(poll, 1000); }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
}());
