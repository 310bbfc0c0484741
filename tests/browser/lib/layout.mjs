// Layout checks that hold on every page Doorman renders, at any width, read from what Chromium
// computed. `layoutProblems(page)` resolves with a list of readable problems (empty when fine).

/** Runs in the page. */
function inspect() {
  const problems = [];
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += `#${el.id}`;
    if (el.classList.length) s += `.${[...el.classList].join('.')}`;
    if (el.name) s += `[name=${el.name}]`;
    const text = (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 30);
    return text ? `${s} "${text}"` : s;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none';
  };

  // The stylesheet applied: the card is a card.
  const card = document.querySelector('main.card');
  if (!card) problems.push('no main.card');
  else {
    const st = getComputedStyle(card);
    if (st.borderTopLeftRadius === '0px' || st.backgroundColor === 'rgba(0, 0, 0, 0)') {
      problems.push('main.card is not styled (doorman.css not applied?)');
    }
  }

  // No sideways scrolling, nothing sticking out on the right.
  if (document.documentElement.scrollWidth > innerWidth) {
    problems.push(`page scrolls sideways: scrollWidth ${document.documentElement.scrollWidth} > ${innerWidth}`);
  }
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > innerWidth + 0.5) problems.push(`${describe(el)} sticks out: right ${r.right} > ${innerWidth}`);
  }

  // Images decoded.
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) problems.push(`image ${img.src} did not load`);
  }

  // Buttons and text fields: styled (not the 13px UA default), at least 44px tall to tap.
  const controls = [...document.querySelectorAll('button, a.button, input, textarea, select')].filter(
    (el) => el.type !== 'hidden' && el.type !== 'radio' && el.type !== 'checkbox' && visible(el),
  );
  for (const el of controls) {
    const r = el.getBoundingClientRect();
    const fontSize = parseFloat(getComputedStyle(el).fontSize);
    if (r.height < 44) problems.push(`${describe(el)} is ${r.height}px tall (< 44px tap target)`);
    if (fontSize < 16) problems.push(`${describe(el)} has a ${fontSize}px font (unstyled?)`);
  }

  // Every control a person fills in or picks has a non-empty label.
  for (const el of document.querySelectorAll('input, textarea, select')) {
    if (el.type === 'hidden') continue;
    const labels = [...(el.labels || [])].map((l) => l.textContent.trim()).filter(Boolean);
    if (!labels.length && !el.getAttribute('aria-label')) problems.push(`${describe(el)} has no label`);
  }

  // Field labels look alike on every form (bold, on their own line), and fields do not touch.
  for (const label of document.querySelectorAll('form label:not(.choice)')) {
    const st = getComputedStyle(label);
    if (Number(st.fontWeight) < 600 || st.display !== 'block') {
      problems.push(`${describe(label)} is not a bold block label (weight ${st.fontWeight}, display ${st.display})`);
    }
  }
  for (const field of document.querySelectorAll('form .field')) {
    const next = field.nextElementSibling;
    if (!next || !visible(next)) continue;
    const gap = next.getBoundingClientRect().top - field.getBoundingClientRect().bottom;
    if (gap < 12) problems.push(`${describe(field)} is ${gap}px above ${describe(next)} (< 12px)`);
  }

  // Buttons side by side or stacked must not touch either.
  const buttons = [...document.querySelectorAll('form button')].filter(visible);
  for (let i = 0; i < buttons.length; i += 1) {
    for (let j = i + 1; j < buttons.length; j += 1) {
      const a = buttons[i].getBoundingClientRect();
      const b = buttons[j].getBoundingClientRect();
      const apart = Math.max(b.left - a.right, a.left - b.right, b.top - a.bottom, a.top - b.bottom);
      if (apart < 8) problems.push(`${describe(buttons[i])} and ${describe(buttons[j])} are ${apart}px apart (< 8px)`);
    }
  }
  return problems;
}

export function layoutProblems(page) {
  return page.evaluate(inspect);
}
