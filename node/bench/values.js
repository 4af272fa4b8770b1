'use strict';
// Realistic JSON-able test values, deterministic (seeded), shared by cluster.js and encoding.js.

function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const WORDS = ['alpha', 'delivery', 'warehouse', 'blue', 'cotton', 'shirt', 'express', 'gift',
  'premium', 'return', 'invoice', 'berlin', 'lisbon', 'kyoto', 'summer', 'sale', 'stock', 'size'];

// A ~100 B record (a user session) or, for larger targets, an order with line items appended
// until its JSON reaches `bytes`.
function makeObject(bytes, seed = 42) {
  const r = rng(seed);
  const pick = () => WORDS[Math.floor(r() * WORDS.length)];
  const id = (p) => `${p}_${Math.floor(r() * 1e8).toString(36)}`;
  if (bytes <= 200) {
    return { id: id('s'), user: id('u'), role: 'editor', active: true, exp: 1767225600, score: 73.5, tz: 'UTC' };
  }
  const order = {
    id: id('ord'), createdAt: '2025-11-26T10:22:00.000Z', status: 'paid', currency: 'EUR',
    customer: { id: id('cus'), name: 'Ada Lovelace', email: 'ada@example.com', vip: false,
      address: { street: '12 Analytical St', city: 'London', zip: 'N1 9GU', country: 'GB' } },
    tags: [pick(), pick(), pick()],
    items: [],
    total: 0,
  };
  // The JSON length is tracked exactly as items are appended (an item adds its own JSON and a
  // comma, `total` changes by its digits), so large values (1 MB) take linear time.
  let length = JSON.stringify(order).length;
  while (length < bytes) {
    const price = Math.round(r() * 10000) / 100;
    const qty = 1 + Math.floor(r() * 4);
    const item = { sku: id('sku'), title: `${pick()} ${pick()} ${pick()}`, price, qty,
      attrs: { color: pick(), size: ['S', 'M', 'L', 'XL'][qty - 1] }, giftWrap: r() < 0.2 };
    order.items.push(item);
    const total = Math.round((order.total + price * qty) * 100) / 100;
    length += JSON.stringify(item).length + (order.items.length > 1 ? 1 : 0) +
      JSON.stringify(total).length - JSON.stringify(order.total).length;
    order.total = total;
  }
  return order;
}

// The stored value: the JSON string of makeObject(bytes) (ASCII, so bytes == length).
const makeValue = (bytes, seed) => JSON.stringify(makeObject(bytes, seed));

module.exports = { makeObject, makeValue };
