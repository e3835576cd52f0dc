"use strict";
// The page of `peft-hub serve`. Every value from the server (adapter names, labels, predictions,
// errors) is inserted as text, never as HTML; the server's Content-Security-Policy allows no
// inline script.
const $ = (id) => document.getElementById(id);
let adapters = [];

function node(tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined) element.textContent = String(text);
  if (className) element.className = className;
  return element;
}

function headers() {
  const h = {"Content-Type": "application/json"};
  if ($("token").value) h["Authorization"] = "Bearer " + $("token").value;
  return h;
}

function score(value) {
  return typeof value === "number" ? "score " + value.toFixed(2) : "";
}

function show(...children) {
  $("result").replaceChildren(...children);
  $("result").dataset.done = "1";
}

function showError(message) {
  show(node("span", message, "error"));
}

// API offsets count Unicode code points (Python's); JavaScript strings count UTF-16 units, so the
// text is cut as an array of code points.
function entities(text, prediction) {
  const chars = Array.from(text), parts = [];
  let at = 0;
  for (const e of prediction.entities) {
    parts.push(document.createTextNode(chars.slice(at, e.start).join("")));
    const mark = node("mark", chars.slice(e.start, e.end).join(""));
    mark.title = e.type + " " + (typeof e.score === "number" ? e.score.toFixed(2) : "");
    mark.append(node("small", e.type));
    parts.push(mark);
    at = e.end;
  }
  parts.push(document.createTextNode(chars.slice(at).join("")));
  if (!prediction.entities.length) parts.push(node("em", "  (no entities)", "muted"));
  return parts;
}

function labelled(label, value) {
  return [node("span", "label ", "muted"), node("span", label, "label"), node("span", value ? " · " + value : "", "muted")];
}

// How a prediction looks is the task's `display` (GET /v1/adapters); anything else shows as JSON.
function render(display, input, p) {
  if (display === "entities" && p && Array.isArray(p.entities)) return entities(input.text || input, p);
  if (display === "label" && p && p.label !== undefined) return labelled(p.label, score(p.score));
  if (display === "labels" && p && Array.isArray(p.labels)) {
    if (!p.labels.length) return [node("em", "(no label)", "muted")];
    return p.labels.flatMap((l, i) => [...(i ? [node("span", ", ")] : []), ...labelled(l, score((p.scores || {})[l]))]);
  }
  if ((display === "label" || display === "score") && p && p.score !== undefined) return [node("span", score(p.score))];
  if (display === "answer" && p && p.answer !== undefined) return [node("span", "answer ", "muted"), node("span", p.answer, "label"),
                                                                   node("span", " · " + score(p.score), "muted")];
  if (display === "generated" && p && typeof p.generated === "string") return [node("span", p.generated)];
  return [node("code", JSON.stringify(p, null, 2))];
}

async function errorOf(response) {
  try { return (await response.json()).error || response.statusText; } catch (e) { return response.status + " " + response.statusText; }
}

async function load() {
  const response = await fetch("/v1/adapters", {headers: headers()});
  if (response.status === 401) {
    $("token-row").hidden = false;
    showError($("token").value ? "That token was refused: check it." : "This server needs a token: enter it and press Use token.");
    return;
  }
  if (!response.ok) { showError(await errorOf(response)); return; }
  adapters = (await response.json()).adapters;
  const body = $("adapters").tBodies[0], select = $("adapter");
  body.replaceChildren();
  select.replaceChildren();
  for (const a of adapters) {
    const row = node("tr");
    row.append(node("td", a.name), node("td", a.task), node("td", a.method), node("td", a.labels.length),
               node("td", a.broken ? "broken: " + a.broken : a.loaded ? "yes" : "no"));
    body.append(row);
    select.append(node("option", a.name));
  }
  const health = await fetch("/health");
  if (health.ok) {
    const h = await health.json();
    $("base").textContent = "Base model: " + h.base_model + " (" + h.fingerprint + ")";
  }
  if ($("result").querySelector(".error")) $("result").replaceChildren();
  pick();
}

function pick() {
  const a = adapters.find((x) => x.name === $("adapter").value);
  $("pair-row").hidden = !(a && a.input_fields.length > 1);
}

async function predict(event) {
  event.preventDefault();
  const a = adapters.find((x) => x.name === $("adapter").value);
  if (!a) { showError("No adapter to ask" + ($("token-row").hidden ? "." : ": enter the token first.")); return; }
  let input = $("text").value;
  if (a.input_fields.length > 1) input = {[a.input_fields[0]]: $("text").value, [a.input_fields[1]]: $("text-pair").value};
  $("result").dataset.done = "";
  $("result").textContent = "…";
  try {
    const response = await fetch("/v1/predict", {method: "POST", headers: headers(), body: JSON.stringify({adapter: a.name, inputs: [input]})});
    if (response.status === 401) { $("token-row").hidden = false; showError("This server needs a token: enter it and press Use token."); return; }
    if (!response.ok) { showError(await errorOf(response)); return; }
    show(...render(a.display, input, (await response.json()).predictions[0]));
  } catch (e) {
    showError("The server did not answer (" + e.message + ").");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("adapter").addEventListener("change", pick);
  $("use-token").addEventListener("click", load);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); load(); } });
  $("form").addEventListener("submit", predict);
  load();
});
