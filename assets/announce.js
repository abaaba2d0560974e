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
  if (!reveal) return;
  // Its top, where the answer is, brought below the page's header unless it is in view already; again
  // once the widgets above have settled (a camera's preview turning into the photo taken).
  const bring = () => {
    const card = document.querySelector(`.st-key-${CSS.escape(reveal)}`);
    const top = card?.getBoundingClientRect().top;
    if (card && (top < 64 || top > innerHeight - 160)) card.scrollIntoView({ block: "start" });
  };
  setTimeout(bring, 100);
  setTimeout(bring, 1000);
}
