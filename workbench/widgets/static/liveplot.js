// LivePlot front end (anywidget ESM of workbench/widgets/_liveview.py). It draws the kernel's
// bokeh document with the page's BokehJS (loaded by hv.extension) and applies the PATCH-DOC
// message of each push. The kernel opens this widget's comm, so pushes arrive while the cell
// that feeds the plot still runs. `document` is the whole document and its generation; a patch
// applies to the document of its own generation only, and patches that come before BokehJS
// has loaded wait for it.
const MAX_WAITING = 200;

function arrayBuffer(view) {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

function bokehLoaded() {
  return window.Bokeh !== undefined && typeof window.Bokeh.require === "function";
}

function render({ model, el }) {
  const note = document.createElement("div");
  note.className = "wb-liveplot-note";
  const host = document.createElement("div");
  host.className = "wb-liveplot-host";
  el.append(note, host);
  let doc = null;
  let generation = -1;
  let waiting = [];
  let timer = null;
  let removed = false;

  function apply([msg, buffers]) {
    const map = new Map(msg.buffers.map((id, i) => [id, arrayBuffer(buffers[i])]));
    try {
      doc.apply_json_patch(JSON.parse(msg.patch), map);
    } catch (err) {
      console.error("LivePlot: a patch did not apply", err);
    }
  }

  function build() {
    const { Document } = window.Bokeh.require("document");
    const { add_document_standalone } = window.Bokeh.require("embed/standalone");
    const state = JSON.parse(model.get("document"));
    if (doc !== null) doc.clear();
    host.replaceChildren();
    note.textContent = "";
    doc = Document.from_json(state.doc);
    generation = state.generation;
    const now = waiting.filter(([m]) => m.generation === generation);
    waiting = waiting.filter(([m]) => m.generation > generation);
    now.forEach(apply);
    add_document_standalone(doc, host);
  }

  function start() {
    if (removed) return;
    if (bokehLoaded()) {
      build();
    } else {
      note.textContent = "LivePlot: waiting for BokehJS (hv.extension('bokeh') loads it)";
      timer = setTimeout(start, 100);
    }
  }

  model.on("msg:custom", (msg, buffers) => {
    if (doc !== null && msg.generation === generation) {
      apply([msg, buffers]);
    } else if (msg.generation >= generation) {
      waiting.push([msg, buffers]);
      if (waiting.length > MAX_WAITING) waiting.shift();
    }
  });
  model.on("change:document", () => {
    if (bokehLoaded()) build();
  });
  start();
  return () => {
    removed = true;
    clearTimeout(timer);
    if (doc !== null) doc.clear();
  };
}

export default { render };
