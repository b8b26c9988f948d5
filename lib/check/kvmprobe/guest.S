/*
 * The KVM probe's guest: one 512-byte boot sector, eib's own.
 *
 * SeaBIOS loads it at 0x7c00 in real mode. It switches to 32-bit
 * protected mode, then to 64-bit long mode (PAE paging, 1 GiB identity
 * mapped with 2 MiB pages), first-touches 64 MiB of guest memory, takes
 * one PIT timer interrupt through an IDT, and prints on COM1 (port 0x3f8):
 *
 *     EIB-KVM-PROBE RPMI LM64-OK
 *
 * "LM64-OK\n" is the 8 bytes of one 64-bit immediate shifted out byte by
 * byte: the same bytes decode differently outside long mode, so seeing
 * them proves the CPU ran 64-bit guest code. The memory touch is there
 * because a host whose KVM is present but broken (nested virtualization
 * without hardware support) runs it about 30 times slower than TCG does
 * (measured: 32 MiB in 2.4 s under KVM, 0.08 s under TCG), which is what
 * stalls real kernels while they decompress. Then it writes to the
 * isa-debug-exit device at port 0xf4, so QEMU exits with status 33.
 *
 * Rebuild guest.bin from this file (TestProbeGuestMatchesSource checks it):
 *     as --64 -o guest.o guest.S && objcopy -O binary guest.o guest.bin
 */
	.code16
	.org 0
start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $0x7c00, %sp
	movw $0x3f8, %dx
	movw $(0x7c00 + (banner - start)), %si
1:	lodsb
	testb %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:	movb $'R', %al
	outb %al, %dx
	lgdtl 0x7c00 + (gdtr - start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x10, $(0x7c00 + (prot - start))

	.code32
prot:
	movw $0x18, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $0x3f8, %dx
	movb $'P', %al
	outb %al, %dx
	/* Page tables: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000. */
	movl $0x1000, %edi
	movl $0xc00, %ecx
	xorl %eax, %eax
	rep stosl
	movl $0x2003, 0x1000
	movl $0x3003, 0x2000
	movl $0x3000, %edi
	movl $0x83, %eax
	movl $512, %ecx
3:	movl %eax, (%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 3b
	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $0x1000, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx		/* EFER */
	rdmsr
	orl $0x100, %eax		/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax		/* PG */
	movl %eax, %cr0
	ljmpl $0x08, $(0x7c00 + (long - start))

	.code64
long:
	/* First touch of 64 MiB from 16 MiB on. */
	movq $0x1000000, %rdi
	movq $0x800000, %rcx
	movq $0x5a5a5a5a5a5a5a5a, %rax
	rep stosq
	movw $0x3f8, %dx
	movb $'M', %al
	outb %al, %dx
	/* PIC: IRQ0 (the PIT) at vector 0x20, every other IRQ masked. */
	movb $0x11, %al
	outb %al, $0x20
	outb %al, $0xa0
	movb $0x20, %al
	outb %al, $0x21
	movb $0x28, %al
	outb %al, $0xa1
	movb $0x04, %al
	outb %al, $0x21
	movb $0x02, %al
	outb %al, $0xa1
	movb $0x01, %al
	outb %al, $0x21
	outb %al, $0xa1
	movb $0xfe, %al
	outb %al, $0x21
	movb $0xff, %al
	outb %al, $0xa1
	/* PIT channel 0, rate generator, 1193 ticks (about 1 ms). */
	movb $0x34, %al
	outb %al, $0x43
	movb $0xa9, %al
	outb %al, $0x40
	movb $0x04, %al
	outb %al, $0x40
	lidt 0x7c00 + (idtr - start)
	sti
4:	hlt
	jmp 4b

tick:
	movw $0x3f8, %dx
	movb $'I', %al
	outb %al, %dx
	movb $' ', %al
	outb %al, %dx
	movabsq $0x0a4b4f2d34364d4c, %rax	/* "LM64-OK\n" */
	movl $8, %ecx
5:	outb %al, %dx
	shrq $8, %rax
	loop 5b
	movb $0x10, %al
	outb %al, $0xf4			/* isa-debug-exit: QEMU exits 33 */
6:	hlt
	jmp 6b

banner:
	.asciz "EIB-KVM-PROBE "

	.align 8
gdt:
	.quad 0
	.quad 0x00209a0000000000	/* 0x08: 64-bit code */
	.quad 0x00cf9a000000ffff	/* 0x10: 32-bit code */
	.quad 0x00cf92000000ffff	/* 0x18: data */
gdtr:
	.word gdtr - gdt - 1
	.long 0x7c00 + (gdt - start)
idt_entry:				/* the gate of vector 0x20 */
	.word (0x7c00 + (tick - start)) & 0xffff
	.word 0x08
	.byte 0, 0x8e
	.word (0x7c00 + (tick - start)) >> 16
	.long 0, 0
idtr:
	.word 0x20f
	.quad 0x7c00 + (idt_entry - start) - 0x200

	.org 510
	.byte 0x55, 0xaa
