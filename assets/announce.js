// Screen readers are told of what changes on its own (a run ending, an answer arriving) through one
// polite live region that stays in the page across reruns: Streamlit replaces its own elements'
// content, and a region that appears already filled is not read. Each channel says a message once;
// with reveal, the container keyed so (st.container(key=...)) is scrolled into view with it.
function catdogAnnounce(channel, message, reveal) {
  const said = (window.catdogAnnounced ??= {});
  if (!message || said[channel] === message) return;
  said[channel] = message;
  let region = document.getElementById("catdog-announcer");
  const fresh = !region;
  if (fresh) {
    region = document.createElement("div");
    region.id = "catdog-announcer";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.className = "catdog-visually-hidden";
    document.body.append(region);
  }
  // A region just added is given a moment to be noticed before it speaks.
  setTimeout(() => { region.textContent = message; }, fresh ? 250 : 0);
  if (reveal) document.querySelector(`.st-key-${CSS.escape(reveal)}`)?.scrollIntoView({ block: "nearest" });
}
