/* Fibers: each CUDA thread of a block runs on its own stack, and control passes between
 * them and the block's scheduler at barriers and warp functions. On x86-64 a switch saves
 * the callee-saved registers and the FPU control words and swaps stack pointers (tens of
 * nanoseconds; a barrier of a 256-thread block is 256 switches); elsewhere ucontext does
 * it, slower (a signal-mask system call per switch) but portable. Stacks come from mmap
 * with a guard page below, so a kernel's stack overflow faults instead of corrupting its
 * neighbour. Under AddressSanitizer every switch is announced to it, so it follows which
 * stack is live. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "simt_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
/* simt_context_switch(void **save_sp, void *new_sp): push the callee-saved registers and
 * the x87/SSE control words on the current stack, store its pointer, load the other's, pop
 * the same from it and return into that context. A new fiber's stack is laid out so this
 * return lands in simt_fiber_trampoline with entry in r12 and its argument in r13. */
__asm__(".text\n"
        ".globl simt_context_switch\n"
        ".type simt_context_switch,@function\n"
        "simt_context_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $16, %rsp\n"
        "  fnstcw (%rsp)\n"
        "  stmxcsr 8(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  fldcw (%rsp)\n"
        "  ldmxcsr 8(%rsp)\n"
        "  addq $16, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size simt_context_switch, .-simt_context_switch\n"
        ".globl simt_fiber_trampoline\n"
        ".type simt_fiber_trampoline,@function\n"
        "simt_fiber_trampoline:\n"
        "  movq %r13, %rdi\n"
        "  callq *%r12\n"
        "  ud2\n" /* an entry never returns: it switches away for good */
        ".size simt_fiber_trampoline, .-simt_fiber_trampoline\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
void simt_context_switch(void **save_sp, void *new_sp);
void simt_fiber_trampoline(void);
#else
#include <ucontext.h>
#endif

static size_t page_size(void)
{
    static size_t p;
    if (!p) p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}

bool simt_fiber_prepare(simt_fiber *f, size_t stack_size, void (*entry)(void *), void *arg)
{
    if (!f->stack || f->stack_size != stack_size) {
        simt_fiber_release(f);
        size_t guard = page_size();
        char *m = mmap(NULL, stack_size + guard, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, guard, PROT_NONE); /* overflow below the stack faults */
        f->stack = m + guard;
        f->stack_size = stack_size;
    }
#ifdef SIMT_ASAN
    /* An abandoned fiber (its block failed) leaves its frames' redzones poisoned. */
    ASAN_UNPOISON_MEMORY_REGION(f->stack, f->stack_size);
#endif
    f->asan_bottom = f->stack;
    f->asan_size = f->stack_size;
    f->asan_fake_stack = NULL;
#if defined(__x86_64__)
    uintptr_t top = ((uintptr_t)f->stack + stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16); /* after the final ret, rsp = top - 16: aligned */
    *--sp = (uint64_t)(uintptr_t)simt_fiber_trampoline;
    *--sp = 0;                          /* rbp */
    *--sp = 0;                          /* rbx */
    *--sp = (uint64_t)(uintptr_t)entry; /* r12 */
    *--sp = (uint64_t)(uintptr_t)arg;   /* r13 */
    *--sp = 0;                          /* r14 */
    *--sp = 0;                          /* r15 */
    sp -= 2;                            /* x87 control word, MXCSR: the current ones */
    uint16_t cw;
    uint32_t csr;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    memcpy(sp, &cw, sizeof cw);
    memcpy((char *)sp + 8, &csr, sizeof csr);
    f->sp = sp;
#else
    if (!f->ucontext && !(f->ucontext = calloc(1, sizeof(ucontext_t)))) return false;
    ucontext_t *uc = f->ucontext;
    getcontext(uc);
    uc->uc_stack.ss_sp = f->stack;
    uc->uc_stack.ss_size = stack_size;
    uc->uc_link = NULL;
    /* makecontext passes ints: the pointer travels in two halves */
    uintptr_t a = (uintptr_t)arg, e = (uintptr_t)entry;
    extern void simt_fiber_ucontext_entry(unsigned, unsigned, unsigned, unsigned);
    makecontext(uc, (void (*)(void))simt_fiber_ucontext_entry, 4, (unsigned)(e >> 32),
                (unsigned)e, (unsigned)(a >> 32), (unsigned)a);
#endif
    return true;
}

#if !defined(__x86_64__)
void simt_fiber_ucontext_entry(unsigned eh, unsigned el, unsigned ah, unsigned al)
{
    void (*entry)(void *) = (void (*)(void *))(((uintptr_t)eh << 32) | el);
    entry((void *)(((uintptr_t)ah << 32) | al));
    abort(); /* entries never return */
}
#endif

void simt_fiber_release(simt_fiber *f)
{
    if (f->stack) munmap(f->stack - page_size(), f->stack_size + page_size());
    free(f->ucontext);
    f->stack = NULL;
    f->ucontext = NULL;
    f->stack_size = 0;
}

void simt_fiber_switch(simt_fiber *from, simt_fiber *to, bool exiting)
{
#ifdef SIMT_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake_stack, to->asan_bottom,
                                   to->asan_size);
#else
    (void)exiting;
#endif
#if defined(__x86_64__)
    simt_context_switch(&from->sp, to->sp);
#else
    if (!from->ucontext) from->ucontext = calloc(1, sizeof(ucontext_t));
    swapcontext(from->ucontext, to->ucontext);
#endif
#ifdef SIMT_ASAN
    /* Back in `from`: the stack we came from is not needed (the scheduler learnt its own in
     * simt_fiber_started). */
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}

void simt_fiber_started(simt_fiber *scheduler)
{
#ifdef SIMT_ASAN
    /* The switch into a new fiber ends here, not in simt_fiber_switch: tell ASan, and learn
     * the scheduler's stack (the OS thread's first fiber is started by the scheduler; later
     * ones may come from another fiber) so switches back announce it. */
    if (!scheduler->asan_bottom)
        __sanitizer_finish_switch_fiber(NULL, &scheduler->asan_bottom, &scheduler->asan_size);
    else
        __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#else
    (void)scheduler;
#endif
}
