// The keys' side of the attention shaders' masks, shared by attention.comp and
// attention_backward.comp (included after their Params and BC): which keys of a block may be
// attended, per (row, key) visibility under a key mask or a segment layout, and the
// workgroup's vote that skips a block no row sees.
shared uint allowed_key[BC]; // 1 where key j0 + c may be attended (in range, not masked)
shared int key_seg[BC];      // segments: the segment of key j0 + c
shared uint seen_tile;       // the last tile (numbered from 1) with a visible (row, key)

// Row i's (segment, base) under a layout; (-1, -1) past Tq or without one.
ivec2 row_segments(Params p, int b, int i)
{
    if (p.segments == 0 || i >= p.Tq) return ivec2(-1);
    int seg = view_load_int(p.mask, view_offset(p.mask, ivec4(0, b, 0, i)));
    if (seg < 0) return ivec2(-1); // a padding query sees nothing, whatever its base
    return ivec2(seg, view_load_int(p.mask, view_offset(p.mask, ivec4(0, b, 1, i))));
}

// allowed_key and key_seg of keys [j0, j0+BC); invocations tid < BC write them.
void load_key_masks(Params p, int b, int j0)
{
    uint tid = gl_LocalInvocationID.x;
    if (tid >= BC) return;
    int j = j0 + int(tid), seg = -1;
    bool ok = j < p.Tk;
    if (ok && p.segments != 0) {
        seg = view_load_int(p.mask, view_offset(p.mask, ivec4(0, b, 0, j)));
        ok = seg >= 0; // not padding
    } else if (ok && p.has_mask != 0) {
        ok = view_load(p.mask, view_offset(p.mask, ivec4(0, 0, b, j))) != 0.0;
    }
    allowed_key[tid] = uint(ok);
    key_seg[tid] = seg;
}

// Whether row i (segment, base seg_i) may attend key j = j0 + c of the loaded block.
bool sees(Params p, int i, int j, uint c, ivec2 seg_i)
{
    return i < p.Tq && allowed_key[c] != 0 && (p.causal == 0 || j <= i + p.Tk - p.Tq) &&
           (p.segments == 0 || key_seg[c] == seg_i.x || key_seg[c] == seg_i.y);
}

// Whether some invocation's `visible` holds in tile number `tile` (1, 2, ...; increasing);
// from uniform control flow, after the barrier that ends the previous tile's reads.
bool tile_seen(bool visible, uint tile)
{
    if (visible) atomicMax(seen_tile, tile);
    barrier();
    return seen_tile == tile; // one value for the whole workgroup
}
