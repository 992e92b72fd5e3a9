// "Sponsor: NAME | CITY", the name linking to the sponsor's site, from /api/sponsor.

export async function showSponsor(element) {
  let sponsor;
  try {
    const response = await fetch("/api/sponsor", { cache: "no-store" });
    if (!response.ok) return;
    sponsor = await response.json();
  } catch {
    return; // The line is decoration: the page works without it.
  }
  if (!sponsor.sponsor_name) return;
  const name = sponsor.sponsor_url ? link(sponsor.sponsor_name, sponsor.sponsor_url) : document.createTextNode(sponsor.sponsor_name);
  element.replaceChildren("Sponsor: ", name);
  if (sponsor.sponsor_city) element.append(` | ${sponsor.sponsor_city}`);
  element.hidden = false;
}

function link(text, href) {
  const anchor = document.createElement("a");
  anchor.textContent = text;
  anchor.href = href;
  anchor.rel = "noopener";
  return anchor;
}
