/*
 * cpuprobe: what an aarch64 CPU tells user space about itself, in the words of
 * Linux's /proc/cpuinfo (arch/arm64/kernel/cpuinfo.c): the HWCAP/HWCAP2 feature
 * names from the auxiliary vector and the fields of MIDR_EL1.
 *
 * edgefm runs it under `qemu-aarch64 -cpu CPU` and writes the /proc/cpuinfo the
 * emulated CPU would have, because qemu 7.2 shows the guest the host's x86 one
 * (and LiteRT and ONNX Runtime then crash). Reading MIDR_EL1 from EL0 works on
 * Linux (HWCAP_CPUID: the kernel emulates the MRS) and under qemu user mode.
 *
 * Output: "midr<TAB>0x...", then "features<TAB>name name ...".
 */
#include <stdio.h>
#include <sys/auxv.h>

static const char *const HWCAP_NAMES[32] = {
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
    "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm",
    "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg"};
static const char *const HWCAP2_NAMES[32] = {
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm",
    "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti", "mte", "ecv", "afp", "rpres", "mte3",
    "sme", "smei16i64", "smef64f64", "smei8i32", "smef16f32", "smeb16f32", "smef32f32", "smefa64", "wfxt"};

int main(void) {
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2), midr = 0;
    if (hw & (1ul << 11)) __asm__ volatile("mrs %0, MIDR_EL1" : "=r"(midr));
    printf("midr\t0x%lx\nfeatures\t", midr);
    const char *sep = "";
    for (int i = 0; i < 32; i++)
        if (hw & (1ul << i)) { printf("%s%s", sep, HWCAP_NAMES[i]); sep = " "; }
    for (int i = 0; i < 32; i++)
        if (hw2 & (1ul << i)) { printf("%s%s", sep, HWCAP2_NAMES[i]); sep = " "; }
    printf("\n");
    return 0;
}
