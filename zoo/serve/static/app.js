// zoo serve's page: plain JavaScript, no library, nothing fetched from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { catalog: null, upload: null, example: null };

function element(tag, properties = {}, children = []) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function answerOf(response) {
  // The server answers errors as {"error": "one line"}; anything else is said plainly.
  try {
    return await response.json();
  } catch {
    return { error: `the server answered ${response.status} ${response.statusText}` };
  }
}

function readAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`${file.name}: could not be read`));
    reader.readAsDataURL(file);
  });
}

// -- choosing ---------------------------------------------------------------------------------------------------------

function source() {
  return state.catalog.sources[$("source").value];
}

function showSource() {
  const chosen = source();
  $("targets").replaceChildren(...chosen.targets.map((name) =>
    element("label", {}, [element("input", { type: "checkbox", value: name, className: "target" }), name])));
  $("all-targets").checked = false;
  const levels = chosen.resolution.toString(2).length - 4; // the highest l that leaves the last resolution its own
  $("swap").replaceChildren(element("option", { value: "", textContent: "each target's recipe" }),
    ...Array.from({ length: levels + 1 }, (_, level) =>
      element("option", { value: String(level), textContent: level === 0 ? "0 (none)" : `${level} (up to ${2 ** (level + 2)} px)` })));
  $("examples-box").hidden = chosen.examples.length === 0;
  $("examples").replaceChildren(...chosen.examples.map((name) => {
    const image = element("img", { src: `/api/examples/${encodeURIComponent($("source").value)}/${encodeURIComponent(name)}`,
                                   alt: name, title: name, className: "example" });
    image.addEventListener("click", () => chooseExample(name, image));
    return image;
  }));
  state.example = state.upload = null;
  $("preview").hidden = true;
  $("drop-text").textContent = "Drop an image here or click to choose one";
  $("distances").open = false;
  $("distances-body").replaceChildren(element("p", { textContent: "Computed when opened (a few seconds)." }));
}

function chooseExample(name, image) {
  state.example = name;
  state.upload = null;
  document.querySelectorAll("#examples img").forEach((other) => other.classList.toggle("chosen", other === image));
  $("preview").src = image.src;
  $("preview").hidden = false;
  $("drop-text").textContent = name;
}

function chooseFile(file) {
  if (!file) return;
  const limit = state.catalog.limits.upload_bytes;
  if (file.size > limit) {
    showError(`${file.name}: ${(file.size / 2 ** 20).toFixed(1)} MiB; uploads are limited to ${limit / 2 ** 20} MiB`);
    return;
  }
  showError("");
  state.upload = file;
  state.example = null;
  document.querySelectorAll("#examples img").forEach((other) => other.classList.remove("chosen"));
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("drop-text").textContent = file.name;
}

function chosenTargets() {
  return [...document.querySelectorAll("input.target:checked")].map((box) => box.value);
}

// -- translating ------------------------------------------------------------------------------------------------------

async function order() {
  if (!state.upload && !state.example) throw new Error("upload an image or pick an example first");
  const targets = chosenTargets();
  if (targets.length === 0) throw new Error("choose at least one target domain");
  const reference = $("reference").files[0];
  const body = { source: $("source").value, targets, styles: Number($("styles").value) || 0,
                 swap: $("swap").value === "" ? null : Number($("swap").value) };
  if (state.upload) body.image = { name: state.upload.name, data: await readAsBase64(state.upload) };
  else body.example = state.example;
  if (reference) body.reference = { name: reference.name, data: await readAsBase64(reference) };
  return body;
}

function showProgress(event) {
  const bar = $("progress");
  bar.hidden = false;
  if (event.stage === "queued") {
    bar.removeAttribute("value");
    $("status-text").textContent = "waiting for the models";
  } else if (event.stage === "inverting") {
    bar.max = event.total;
    bar.value = event.done;
    $("status-text").textContent = `inverting with ${$("source").value}`;
  } else if (event.stage === "rendering") {
    bar.max = event.total;
    bar.value = event.done;
    $("status-text").textContent = `drawing with ${event.target} (${event.done + 1} of ${event.total})`;
  }
}

async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const text of lines) if (text.trim()) yield JSON.parse(text);
  }
}

async function translate() {
  showError("");
  $("translate").disabled = true;
  $("status-text").textContent = "sending";
  try {
    const response = await fetch("/api/translate", { method: "POST", headers: { "Content-Type": "application/json" },
                                                     body: JSON.stringify(await order()) });
    if (!response.ok) throw new Error((await answerOf(response)).error);
    let finished = false;
    for await (const event of events(response)) {
      if (event.stage === "error") throw new Error(event.error);
      if (event.stage === "done") {
        showResult(event.result);
        finished = true;
      } else showProgress(event);
    }
    if (!finished) throw new Error("the server stopped answering before the translation finished; try again");
    $("status-text").textContent = "done";
  } catch (error) {
    showError(error.message.startsWith("NetworkError") || error instanceof TypeError
      ? "cannot reach the zoo server; is `zoo serve` still running?" : error.message);
    $("status-text").textContent = "";
  } finally {
    $("progress").hidden = true;
    $("translate").disabled = false;
  }
}

function figure(picture, className) {
  return element("figure", { className }, [
    element("img", { src: picture.url, alt: picture.label, title: picture.label }),
    element("figcaption", {}, [element("a", { href: picture.url, download: picture.file, className: "download", textContent: "PNG" }),
                               " ", picture.label]),
  ]);
}

function showResult(result) {
  const inputs = [figure(result.input, "input")];
  if (result.reconstruction) inputs.push(figure(result.reconstruction, "reconstruction"));
  const rows = [element("div", { className: "row" }, [element("h3", { textContent: "input" }), ...inputs])];
  for (const target of result.targets) {
    const figures = target.outputs.map((picture) => figure(picture, "output"));
    if (target.truth) figures.push(figure(target.truth, "truth"));
    rows.push(element("div", { className: "row" }, [element("h3", { textContent: target.name }), ...figures]));
  }
  $("rows").replaceChildren(...rows);
  $("zip").href = result.zip;
  $("timing").textContent = `${result.seconds} s, method: ${result.method}`;
  $("gallery-head").hidden = false;
}

// -- distances --------------------------------------------------------------------------------------------------------

async function showDistances() {
  if (!$("distances").open || $("distances-body").dataset.source === $("source").value) return;
  const name = $("source").value;
  $("distances-body").replaceChildren(element("progress"), " computing…");
  const response = await fetch(`/api/distances/${encodeURIComponent(name)}`);
  const answer = await answerOf(response);
  if (!response.ok) {
    $("distances-body").replaceChildren(element("p", { className: "error", textContent: answer.error }));
    return;
  }
  const header = element("tr", {}, [element("th"), ...answer.names.map((n) => element("th", { textContent: n }))]);
  const rows = answer.matrix.map((values, row) => element("tr", {}, [element("th", { textContent: answer.names[row] }),
    ...values.map((value) => element("td", { textContent: value.toFixed(3) }))]));
  $("distances-body").dataset.source = name;
  $("distances-body").replaceChildren(
    element("p", { textContent: `${answer.label}, mean over ${answer.samples} shared z per pair of models.` }),
    element("img", { src: answer.heatmap, alt: "distance heatmap", className: "heatmap" }),
    element("table", {}, [header, ...rows]));
}

// -- start ------------------------------------------------------------------------------------------------------------

async function start() {
  const response = await fetch("/api/catalog");
  const answer = await answerOf(response);
  if (!response.ok) return showError(answer.error);
  state.catalog = answer;
  const names = Object.keys(answer.sources);
  if (names.length === 0) {
    showError("no installed model has another domain of its family to translate into; see `zoo list --installed`");
    $("translate").disabled = true;
    return;
  }
  $("source").replaceChildren(...names.map((name) => element("option", { value: name, textContent: name })));
  $("styles").max = answer.limits.styles;
  showSource();
}

$("source").addEventListener("change", () => { delete $("distances-body").dataset.source; showSource(); });
$("all-targets").addEventListener("change", (event) =>
  document.querySelectorAll("input.target").forEach((box) => { box.checked = event.target.checked; }));
$("drop").addEventListener("click", () => $("file").click());
$("drop").addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") $("file").click(); });
$("file").addEventListener("change", () => chooseFile($("file").files[0]));
for (const name of ["dragenter", "dragover"])
  $("drop").addEventListener(name, (event) => { event.preventDefault(); $("drop").classList.add("over"); });
for (const name of ["dragleave", "drop"])
  $("drop").addEventListener(name, () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => { event.preventDefault(); chooseFile(event.dataTransfer.files[0]); });
$("translate").addEventListener("click", translate);
$("distances").addEventListener("toggle", showDistances);
start().catch((error) => showError(`cannot load the page's data: ${error.message}`));
