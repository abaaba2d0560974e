// catdog in the browser: the offline page and the Predict page's live camera both run this.
// It makes a picture's pixels exactly as the server does (catdog.images.to_model_input: PIL's
// bilinear resize, to the integer), runs the model catdog.web exported on ONNX Runtime Web,
// and shows the answer live: the class, its bars, and "I don't know" past the guard's border.
(function (global) {
  "use strict";

  // PIL's Resample.c for 8-bit channels: coefficients in fixed point with 22 fraction bits.
  const PRECISION_BITS = 22;

  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1);
    const support = filterscale; // the bilinear filter's support is 1, widened when shrinking
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const kk = new Int32Array(outSize * ksize);
    const weights = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      let total = 0;
      for (let x = 0; x < count; x++) {
        const t = Math.abs((x + xmin - center + 0.5) / filterscale);
        weights[x] = t < 1 ? 1 - t : 0;
        total += weights[x];
      }
      for (let x = 0; x < count; x++) {
        const w = total !== 0 ? weights[x] / total : weights[x];
        kk[xx * ksize + x] = Math.trunc(w * (1 << PRECISION_BITS) + (w < 0 ? -0.5 : 0.5));
      }
      bounds[2 * xx] = xmin;
      bounds[2 * xx + 1] = count;
    }
    return { ksize, bounds, kk };
  }

  function clip8(sum) {
    const v = Math.floor(sum / (1 << PRECISION_BITS));
    return v < 0 ? 0 : v > 255 ? 255 : v;
  }

  // One pass along x (step 1 pixel) or y (step one row) of an RGB(A) buffer with `channels` a pixel.
  function pass(src, width, height, channels, outW, outH, horizontal) {
    const { ksize, bounds, kk } = coefficients(horizontal ? width : height, horizontal ? outW : outH);
    const out = new Uint8ClampedArray(outW * outH * 3);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        const i = horizontal ? x : y;
        const start = bounds[2 * i], count = bounds[2 * i + 1];
        for (let c = 0; c < 3; c++) {
          let sum = half;
          for (let k = 0; k < count; k++) {
            const at = horizontal ? (y * width + start + k) : ((start + k) * width + x);
            sum += src[at * channels + c] * kk[i * ksize + k];
          }
          out[(y * outW + x) * 3 + c] = clip8(sum);
        }
      }
    }
    return out;
  }

  // RGBA pixels (a canvas's ImageData) → RGB floats 0..255 at outW × outH, NHWC, as PIL makes them.
  function resize(rgba, width, height, outW, outH) {
    let pixels = rgba, channels = 4, w = width;
    if (outW !== width) {
      pixels = pass(pixels, width, height, channels, outW, height, true);
      channels = 3;
      w = outW;
    }
    if (outH !== height) {
      pixels = pass(pixels, w, height, channels, w, outH, false);
      channels = 3;
    }
    const out = new Float32Array(outW * outH * 3);
    for (let p = 0, n = outW * outH; p < n; p++) {
      for (let c = 0; c < 3; c++) out[p * 3 + c] = pixels[p * channels + c];
    }
    return out;
  }

  // The exported model: model.json's meta and an ONNX Runtime session of model.onnx.
  class Model {
    constructor(ort, session, meta) {
      this.ort = ort;
      this.session = session;
      this.meta = meta;
    }

    static async load(ort, modelBytes, meta) {
      ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a file:// page lacks
      const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ["wasm"] });
      return new Model(ort, session, meta);
    }

    // The answer for RGBA pixels of any size: probabilities by class, label, unfamiliarity.
    async classify(rgba, width, height) {
      const feeds = {};
      for (const [name, [h, w]] of Object.entries(this.meta.inputs)) {
        feeds[name] = new this.ort.Tensor("float32", resize(rgba, width, height, w, h), [1, h, w, 3]);
      }
      const out = await this.session.run(feeds);
      const probs = Array.from(out.probabilities.data);
      const classes = this.meta.classes;
      const best = probs.indexOf(Math.max(...probs));
      const score = out.unfamiliarity ? out.unfamiliarity.data[0] : null;
      return {
        probabilities: Object.fromEntries(classes.map((name, i) => [name, probs[i]])),
        label: classes[best],
        confidence: probs[best],
        unfamiliarity: score,
        unfamiliar: score === null ? null : score > this.meta.guard.border,
      };
    }
  }

  function element(tag, attributes, parent, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // A text of options.texts (the page's language; catdog.inference.web.PAGE_TEXTS holds the
  // English and the pages' translations) with its {fields} filled.
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (field, name) => (name in values ? values[name] : field));
  }

  // The camera (or a photo) view with its live answer, built into `root`.
  class View {
    constructor(root, model, options) {
      this.model = model;
      this.options = options || {};
      const texts = this.options.texts || {};
      this.text = (key, values) => fill(texts[key] || key, values || {});
      this.numbers = new Intl.NumberFormat(document.documentElement.lang || "en", { maximumFractionDigits: 1, minimumFractionDigits: 1 });
      this.percents = new Intl.NumberFormat(document.documentElement.lang || "en", { style: "percent" });
      this.facing = "environment";
      this.stats = { answers: 0, started: null, firstAnswerMs: null, perSecond: 0, last: null };
      const bar = element("div", { class: "catdog-controls" }, root);
      this.cameraButton = element("button", { type: "button" }, bar, this.text("start"));
      this.switchButton = element("button", { type: "button", disabled: "" }, bar, this.text("switch"));
      const picker = element("label", { class: "catdog-picker" }, bar, this.text("choose") + " ");
      this.photoInput = element("input", { type: "file", accept: "image/*" }, picker);
      const stage = element("div", { class: "catdog-stage" }, root);
      this.video = element("video", { playsinline: "", muted: "", autoplay: "", "aria-label": this.text("cameraView") }, stage);
      this.photo = element("img", { alt: this.text("chosenPhoto"), hidden: "" }, stage);
      this.answer = element("p", { class: "catdog-answer", role: "status", "aria-live": "polite" }, root,
        this.text("prompt"));
      this.bars = element("div", { class: "catdog-bars" }, root);
      this.meters = {};
      for (const name of model.meta.classes) {
        const row = element("div", { class: "catdog-bar" }, this.bars);
        const id = "catdog-bar-" + name.replace(/\W+/g, "-");
        element("span", { id }, row, name);
        const meter = element("div", { role: "progressbar", "aria-labelledby": id, "aria-valuemin": "0", "aria-valuemax": "100" }, row);
        this.meters[name] = { fill: element("div", { class: "catdog-fill" }, meter), meter, value: element("span", {}, row) };
      }
      this.rate = element("p", { class: "catdog-rate" }, root);
      this.canvas = document.createElement("canvas");
      this.cameraButton.addEventListener("click", () => (this.stream ? this.stop() : this.start()));
      this.switchButton.addEventListener("click", () => this.switchCamera());
      this.photoInput.addEventListener("change", () => this.showPhoto(this.photoInput.files[0]));
    }

    async start() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        this.say(this.text("noCamera"));
        return;
      }
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: this.facing }, audio: false });
      } catch (error) {
        this.say(this.text("cameraFailed", { error: error.name }));
        return;
      }
      this.video.srcObject = this.stream;
      this.video.hidden = false;
      this.photo.hidden = true;
      this.cameraButton.textContent = this.text("stop");
      this.switchButton.removeAttribute("disabled");
      await this.video.play();
      this.stats.started = this.stats.started || performance.now();
      this.loop();
    }

    stop() {
      if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
      this.stream = null;
      this.cameraButton.textContent = this.text("start");
      this.switchButton.setAttribute("disabled", "");
    }

    async switchCamera() {
      this.facing = this.facing === "environment" ? "user" : "environment";
      this.stop();
      await this.start();
    }

    // One answer after another while the camera runs: as many a second as the device manages.
    async loop() {
      const stream = this.stream;
      let windowStart = performance.now(), windowCount = 0;
      while (this.stream === stream) {
        if (this.video.readyState >= 2 && this.video.videoWidth) {
          await this.answerFor(this.video, this.video.videoWidth, this.video.videoHeight);
          windowCount += 1;
          const now = performance.now();
          if (now - windowStart >= 1000) {
            this.stats.perSecond = (windowCount * 1000) / (now - windowStart);
            this.rate.textContent = this.text("rate", { rate: this.numbers.format(this.stats.perSecond) });
            windowStart = now;
            windowCount = 0;
          }
        }
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
    }

    async showPhoto(file) {
      if (!file) return;
      this.stop();
      const bitmap = await createImageBitmap(file);
      this.photo.src = URL.createObjectURL(file);
      this.photo.hidden = false;
      this.video.hidden = true;
      this.stats.started = performance.now();
      await this.answerFor(bitmap, bitmap.width, bitmap.height);
    }

    async answerFor(source, width, height) {
      this.canvas.width = width;
      this.canvas.height = height;
      const context = this.canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(source, 0, 0, width, height);
      const result = await this.model.classify(context.getImageData(0, 0, width, height).data, width, height);
      this.show(result);
      return result;
    }

    show(result) {
      const percent = (p) => this.percents.format(p);
      const text = result.unfamiliar
        ? this.text("unfamiliar", { label: result.label })
        : result.label + " (" + percent(result.confidence) + ")";
      this.say(text);
      this.answer.dataset.label = result.label;
      this.answer.dataset.unfamiliar = String(result.unfamiliar);
      for (const [name, p] of Object.entries(result.probabilities)) {
        const meter = this.meters[name];
        meter.fill.style.width = (p * 100).toFixed(1) + "%";
        meter.meter.setAttribute("aria-valuenow", String(Math.round(p * 100)));
        meter.value.textContent = percent(p);
      }
      this.stats.answers += 1;
      this.stats.last = result;
      if (this.stats.firstAnswerMs === null) this.stats.firstAnswerMs = performance.now();
      if (this.options.onAnswer) this.options.onAnswer(result, this.stats);
    }

    say(text) {
      if (this.answer.textContent !== text) this.answer.textContent = text;
    }
  }

  const STYLE = `
.catdog-controls { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.catdog-controls button { font: inherit; padding: .4rem .9rem; border-radius: .4rem; border: 1px solid #888; background: #fff; }
.catdog-stage video, .catdog-stage img { max-width: 100%; max-height: 50vh; border-radius: .4rem; background: #000; }
.catdog-answer { font-size: 1.6rem; font-weight: 600; margin: .5rem 0; }
.catdog-bar { display: grid; grid-template-columns: 6rem 1fr 3.5rem; gap: .5rem; align-items: center; margin: .2rem 0; }
.catdog-bar [role=progressbar] { height: 1rem; background: #e6e6e6; border-radius: .5rem; overflow: hidden; }
.catdog-fill { height: 100%; width: 0; background: #ff4b4b; transition: width .15s; }
.catdog-rate { color: #555; font-size: .9rem; }
`;

  function addStyle() {
    element("style", {}, document.head, STYLE);
  }

  global.catdog = { resize, Model, View, addStyle };
})(typeof window !== "undefined" ? window : globalThis);
