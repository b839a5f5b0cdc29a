/**
 * The data plane's WebAssembly SIMD kernels as WebAssembly text, assembled at load time by wabt
 * (./kernels.ts). Both loop over 4 lanes at a time, then a scalar tail with the same float32 operations
 * in the same order, so every element gets the bits of the reference in shared/optim/sgd_shard.ts.
 * Pointers are byte offsets into the imported memory, 4-byte aligned.
 */
export const KERNELS_WAT = String.raw`
(module
  (import "env" "memory" (memory 1 65536))

  ;; step(w, mom, left, right, hasRight, n, first, samples, lr, momentum, wd, outMom, outW):
  ;; g = left + right; d = g / samples + wd*w; b = first ? d : momentum*mom + d; outMom = b; outW = w - lr*b
  (func (export "step")
    (param $w i32) (param $mom i32) (param $l i32) (param $r i32) (param $hasR i32) (param $n i32) (param $first i32)
    (param $s f32) (param $lr f32) (param $m f32) (param $wd f32) (param $om i32) (param $ow i32)
    (local $i i32) (local $nv i32) (local $o i32)
    (local $g v128) (local $wv v128) (local $b v128)
    (local $vs v128) (local $vlr v128) (local $vm v128) (local $vwd v128)
    (local $gs f32) (local $ws f32) (local $bs f32)
    (local.set $vs (f32x4.splat (local.get $s)))
    (local.set $vlr (f32x4.splat (local.get $lr)))
    (local.set $vm (f32x4.splat (local.get $m)))
    (local.set $vwd (f32x4.splat (local.get $wd)))
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vec
        (br_if $vdone (i32.ge_u (local.get $i) (local.get $nv)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $g (v128.load (i32.add (local.get $l) (local.get $o))))
        (if (local.get $hasR)
          (then (local.set $g (f32x4.add (local.get $g) (v128.load (i32.add (local.get $r) (local.get $o)))))))
        (local.set $wv (v128.load (i32.add (local.get $w) (local.get $o))))
        (local.set $b (f32x4.add (f32x4.div (local.get $g) (local.get $vs)) (f32x4.mul (local.get $vwd) (local.get $wv))))
        (if (i32.eqz (local.get $first))
          (then (local.set $b (f32x4.add
            (f32x4.mul (local.get $vm) (v128.load (i32.add (local.get $mom) (local.get $o))))
            (local.get $b)))))
        (v128.store (i32.add (local.get $om) (local.get $o)) (local.get $b))
        (v128.store (i32.add (local.get $ow) (local.get $o))
          (f32x4.sub (local.get $wv) (f32x4.mul (local.get $vlr) (local.get $b))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $sdone
      (loop $tail
        (br_if $sdone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gs (f32.load (i32.add (local.get $l) (local.get $o))))
        (if (local.get $hasR)
          (then (local.set $gs (f32.add (local.get $gs) (f32.load (i32.add (local.get $r) (local.get $o)))))))
        (local.set $ws (f32.load (i32.add (local.get $w) (local.get $o))))
        (local.set $bs (f32.add (f32.div (local.get $gs) (local.get $s)) (f32.mul (local.get $wd) (local.get $ws))))
        (if (i32.eqz (local.get $first))
          (then (local.set $bs (f32.add
            (f32.mul (local.get $m) (f32.load (i32.add (local.get $mom) (local.get $o))))
            (local.get $bs)))))
        (f32.store (i32.add (local.get $om) (local.get $o)) (local.get $bs))
        (f32.store (i32.add (local.get $ow) (local.get $o))
          (f32.sub (local.get $ws) (f32.mul (local.get $lr) (local.get $bs))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

;; add(a, b, n): a = a + b (float32; a node of the canonical tree from its two children)
  (func (export "add") (param $a i32) (param $b i32) (param $n i32)
    (local $i i32) (local $nv i32) (local $o i32)
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vec
        (br_if $vdone (i32.ge_u (local.get $i) (local.get $nv)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (v128.store (i32.add (local.get $a) (local.get $o))
          (f32x4.add (v128.load (i32.add (local.get $a) (local.get $o))) (v128.load (i32.add (local.get $b) (local.get $o)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $sdone
      (loop $tail
        (br_if $sdone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (f32.store (i32.add (local.get $a) (local.get $o))
          (f32.add (f32.load (i32.add (local.get $a) (local.get $o))) (f32.load (i32.add (local.get $b) (local.get $o)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; take(w, b, n, lr, outMom, outW): outMom = b (skipped when outMom is b); outW = w - lr*b
  (func (export "take")
    (param $w i32) (param $b i32) (param $n i32) (param $lr f32) (param $om i32) (param $ow i32)
    (local $i i32) (local $nv i32) (local $o i32) (local $bv v128) (local $vlr v128) (local $copy i32) (local $bs f32)
    (local.set $vlr (f32x4.splat (local.get $lr)))
    (local.set $copy (i32.ne (local.get $om) (local.get $b)))
    (local.set $nv (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vec
        (br_if $vdone (i32.ge_u (local.get $i) (local.get $nv)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $bv (v128.load (i32.add (local.get $b) (local.get $o))))
        (if (local.get $copy) (then (v128.store (i32.add (local.get $om) (local.get $o)) (local.get $bv))))
        (v128.store (i32.add (local.get $ow) (local.get $o))
          (f32x4.sub (v128.load (i32.add (local.get $w) (local.get $o))) (f32x4.mul (local.get $vlr) (local.get $bv))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $sdone
      (loop $tail
        (br_if $sdone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $bs (f32.load (i32.add (local.get $b) (local.get $o))))
        (if (local.get $copy) (then (f32.store (i32.add (local.get $om) (local.get $o)) (local.get $bs))))
        (f32.store (i32.add (local.get $ow) (local.get $o))
          (f32.sub (f32.load (i32.add (local.get $w) (local.get $o))) (f32.mul (local.get $lr) (local.get $bs))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))
)`;
