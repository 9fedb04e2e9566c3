// Masks in the browser: COCO uncompressed RLE (column-major counts, starting with background)
// decoded to a row-major Uint8Array, and the overlay painted from the masks of one frame.

/** {size: [H, W], counts: [...]} -> Uint8Array(H * W), row-major, 0/1. */
export function decodeRle(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  let pos = 0; // column-major position
  let value = 0;
  for (const count of rle.counts) {
    if (value) {
      for (let p = pos; p < pos + count; p++) {
        const x = (p / h) | 0;
        const y = p - x * h;
        out[y * w + x] = 1;
      }
    }
    pos += count;
    value ^= 1;
  }
  return out;
}

/** "#rrggbb" -> [r, g, b]. */
export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export const FILL_ALPHA = 115; // the mask's inside (of 255)
export const EDGE_ALPHA = 255; // its outline

/** Paints ``masks`` (a list of {mask: Uint8Array, color: "#rrggbb"}; later ones on top) into
 *  ``image`` (an ImageData of the frame's size): a translucent fill and an opaque outline
 *  (mask pixels with a background 4-neighbour), transparent elsewhere. The painted pixels are
 *  exactly the masks' pixels. */
export function paintOverlay(image, masks) {
  const { width: w, height: h, data } = image;
  data.fill(0);
  for (const { mask, color } of masks) {
    const [r, g, b] = hexToRgb(color);
    for (let y = 0, i = 0; y < h; y++) {
      for (let x = 0; x < w; x++, i++) {
        if (!mask[i]) continue;
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
          !mask[i - 1] || !mask[i + 1] || !mask[i - w] || !mask[i + w];
        const o = i * 4;
        data[o] = r;
        data[o + 1] = g;
        data[o + 2] = b;
        data[o + 3] = edge ? EDGE_ALPHA : FILL_ALPHA;
      }
    }
  }
  return image;
}

/** The mask as an 8-bit PNG (0/255) Blob. */
export async function maskPng(mask, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i] ? 255 : 0;
    image.data[i * 4] = v;
    image.data[i * 4 + 1] = v;
    image.data[i * 4 + 2] = v;
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

/** The image cut out by the mask (RGBA PNG: transparent outside), cropped to the mask's box. */
export async function cutoutPng(bitmap, mask, width, height) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      if (mask[i]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) throw new Error("the mask is empty: click on the object first");
  const full = new OffscreenCanvas(width, height);
  const ctx = full.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const image = ctx.getImageData(0, 0, width, height);
  for (let i = 0; i < mask.length; i++) if (!mask[i]) image.data[i * 4 + 3] = 0;
  const cw = x1 - x0 + 1, ch = y1 - y0 + 1;
  const crop = new OffscreenCanvas(cw, ch);
  crop.getContext("2d").putImageData(image, -x0, -y0, x0, y0, cw, ch);
  return crop.convertToBlob({ type: "image/png" });
}
