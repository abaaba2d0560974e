// Streamlit's file uploader names some of its parts for screen readers itself, in English, with no
// option to change it (streamlit/streamlit#13500): its hidden file input, its "Upload" button, each
// chosen file's remove (or cancel) button and its "Add files" button. It writes some words itself:
// the hint while a file is dragged over, a refused file's reason, the camera input's buttons and
// permission notice. These are set here in the page's language
// (catdog_ui.uploader_names), and again whenever Streamlit draws them anew.
function catdogNameUploaders(names) {
  window.catdogUploaderNames = names;
  const fill = (template, value) => template.replace(/\{\w+\}/, value);
  // Words Streamlit writes itself, replaced in place: whole, or by a pattern keeping one value.
  const translateWords = (root, whole, patterns = []) => {
    const words = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let word = words.nextNode(); word; word = words.nextNode()) {
      const english = word.nodeValue.trim();
      let ours = whole[english];
      for (const [pattern, template] of patterns) {
        const found = english.match(pattern);
        if (found) ours = fill(template, found[1]);
      }
      if (ours && english !== ours) word.nodeValue = word.nodeValue.replace(english, ours);
    }
  };
  const rename = (element, name) => {
    if (element.getAttribute("aria-label") !== name) element.setAttribute("aria-label", name);
  };
  const renameAll = () => {
    const texts = window.catdogUploaderNames;
    for (const uploader of document.querySelectorAll('[data-testid="stFileUploader"]')) {
      uploader.querySelectorAll('input[data-testid="stFileUploaderDropzoneInput"]').forEach((input) => rename(input, texts.input));
      for (const chip of uploader.querySelectorAll('[data-testid="stFileChip"]')) {
        const button = chip.querySelector("button[aria-label]");
        if (!button) continue;
        // Streamlit's own English, kept to tell a remove button from a cancel one and to know the file.
        const english = button.getAttribute("aria-label");
        const removes = english.match(/^Remove (.*)$/);
        const cancels = english.match(/^Cancel upload of (.*)$/);
        if (removes) rename(button, fill(texts.remove, removes[1]));
        if (cancels) rename(button, fill(texts.cancel, cancels[1]));
      }
      uploader.querySelectorAll('button[aria-label="Add files"]').forEach((button) => rename(button, texts.add));
      // Its "Upload" button shows our word (catdog_ui.uploader_css); named so for every checker too.
      uploader.querySelectorAll('[data-testid="stFileUploaderDropzone"] button:not([aria-label])')
        .forEach((button) => rename(button, texts.upload));
      translateWords(uploader, texts.uploader, [
        [/^File must be (.+) or smaller\.$/, texts.tooLarge],
        [/^(.+) files are not allowed\.$/, texts.notAllowed],
      ]);
    }
    for (const camera of document.querySelectorAll('[data-testid="stCameraInput"]')) {
      translateWords(camera, texts.camera);
      camera.querySelectorAll('button[aria-label="Switch camera"]').forEach((button) => rename(button, texts.camera["Switch camera"]));
    }
  };
  renameAll();
  if (window.catdogUploaderObserver) return;
  window.catdogUploaderObserver = new MutationObserver(renameAll);
  window.catdogUploaderObserver.observe(document.body, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["aria-label"],
    characterData: true, // the camera button's word changes in place: "Take Photo", "Clear photo"
  });
}
