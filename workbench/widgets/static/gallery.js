// ChipGallery front end (anywidget ESM). Thumbnails arrive as PNG bytes (DataView buffers),
// are shown through object URLs, and a click sets the synced `selected` trait.

function fmt(v, digits = 4) {
  return Number(v).toFixed(digits);
}

function describe(meta, label) {
  const rows = [];
  rows.push(["chip", `${label ?? ""} (index ${meta.index ?? "?"})`]);
  if (Array.isArray(meta.bounds) && meta.bounds.length === 4) {
    const [w, s, e, n] = meta.bounds;
    rows.push(["bounds", `W ${fmt(w)}, S ${fmt(s)}, E ${fmt(e)}, N ${fmt(n)}`]);
  }
  if (Array.isArray(meta.center) && meta.center.length === 2) {
    rows.push(["centre", `lon ${fmt(meta.center[0])}, lat ${fmt(meta.center[1])}`]);
  }
  if (meta.time) {
    rows.push(["time", Array.isArray(meta.time) ? meta.time.join(" to ") : String(meta.time)]);
  }
  if (meta.geocode) rows.push(["geocode", String(meta.geocode)]);
  return rows;
}

function render({ model, el }) {
  el.classList.add("wb-gallery");
  const title = document.createElement("div");
  title.className = "wb-gallery-title";
  const grid = document.createElement("div");
  grid.className = "wb-gallery-grid";
  const info = document.createElement("div");
  info.className = "wb-gallery-info";
  const where = document.createElement("div");
  where.className = "wb-gallery-location";
  const body = document.createElement("div");
  body.className = "wb-gallery-body";
  body.append(grid, where);
  el.append(title, body, info);
  let urls = [];

  function drawLocation() {
    // The kernel draws the map (SVG from numbers only); parse it as SVG, never as HTML.
    where.replaceChildren();
    const svg = model.get("location") || "";
    if (!svg) return;
    const doc = new DOMParser().parseFromString(`<div xmlns="http://www.w3.org/2000/svg">${svg}</div>`, "image/svg+xml");
    for (const map of doc.documentElement.querySelectorAll(":scope > svg")) {
      where.append(document.importNode(map, true));
    }
    highlight();
  }

  function highlight() {
    const sel = model.get("selected");
    for (const shape of where.querySelectorAll("[data-position]")) {
      shape.classList.toggle("wb-selected", Number(shape.dataset.position) === sel);
    }
  }

  function select(i) {
    model.set("selected", model.get("selected") === i ? null : i);
    model.save_changes();
  }

  function showInfo() {
    const sel = model.get("selected");
    const meta = model.get("meta") || [];
    const labels = model.get("labels") || [];
    for (const fig of grid.children) {
      fig.classList.toggle("wb-selected", Number(fig.dataset.position) === sel);
    }
    highlight();
    info.replaceChildren();
    if (sel === null || sel === undefined || sel >= grid.children.length) {
      info.textContent = "Click a thumbnail to see where and when it is.";
      info.classList.remove("wb-has-selection");
      return;
    }
    info.classList.add("wb-has-selection");
    // The kernel adds bounds and time to `info` on selection; until then show what we have.
    const info_ = model.get("info") || {};
    const known = info_.position === sel ? info_ : meta[sel] || { index: sel };
    const table = document.createElement("dl");
    for (const [key, value] of describe(known, labels[sel])) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.field = key;
      table.append(dt, dd);
    }
    info.append(table);
  }

  function draw() {
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [];
    grid.replaceChildren();
    const images = model.get("images") || [];
    const labels = model.get("labels") || [];
    const size = model.get("thumb_size");
    title.textContent = model.get("title") || "";
    grid.style.setProperty("--wb-thumb-size", `${size}px`);
    images.forEach((buffer, i) => {
      const url = URL.createObjectURL(new Blob([buffer], { type: "image/png" }));
      urls.push(url);
      const fig = document.createElement("figure");
      fig.className = "wb-thumb";
      fig.dataset.position = String(i);
      fig.tabIndex = 0;
      const img = document.createElement("img");
      img.src = url;
      img.alt = labels[i] ?? `chip ${i}`;
      img.draggable = false;
      const cap = document.createElement("figcaption");
      cap.textContent = labels[i] ?? String(i);
      fig.append(img, cap);
      fig.addEventListener("click", () => select(i));
      fig.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          select(i);
        }
      });
      grid.append(fig);
    });
    showInfo();
  }

  model.on("change:images", draw);
  model.on("change:labels", draw);
  model.on("change:thumb_size", draw);
  model.on("change:title", draw);
  model.on("change:meta", showInfo);
  model.on("change:selected", showInfo);
  model.on("change:info", showInfo);
  model.on("change:location", drawLocation);
  draw();
  drawLocation();
  return () => urls.forEach((u) => URL.revokeObjectURL(u));
}

export default { render };
