using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DreamBooth;

/// <summary>
/// Process environment that libtorch reads once, when its native library loads. OpenMP's default active spin-waiting
/// makes libtorch several times slower as soon as anything else runs on a small machine (measured here on 2 cores), so
/// unless the user chose otherwise this sets <c>OMP_WAIT_POLICY=PASSIVE</c> before the first native call. It has to be
/// set in the native environment (<c>setenv</c>): .NET's Environment.SetEnvironmentVariable does not reach native code
/// on Linux.
/// <para>For large models (<see cref="ForModelOfSize"/>) it also fixes glibc malloc's mmap threshold at 128 KiB
/// (<c>mallopt(M_MMAP_THRESHOLD)</c>, as the <c>MALLOC_MMAP_THRESHOLD_</c> variable would): by default glibc raises the
/// threshold after each large free, so later tensors up to 32 MiB come from heap arenas that fragment and never shrink.
/// Measured on a bf16 DreamBooth step of SD 1.5 at 512×512: peak RSS 10.8 → 9.0 GiB. Small models keep glibc's
/// default: every mmap'd tensor costs fresh zeroed pages, and on a 2-core VM the tiny model's quickstart took 305 s with
/// the fixed threshold against 140 s without (same peak RSS, 0.47 GiB). Set <c>MALLOC_MMAP_THRESHOLD_</c> yourself to
/// choose another value.</para>
/// </summary>
public static class NativeEnvironment
{
#pragma warning disable CA2255 // deliberate: a library initializer is the only hook that runs before a notebook's first torch call
    [ModuleInitializer]
    internal static void OnLoad()
    {
        Apply();
        OneDnnEnabled = ConfigureOneDnn();
    }

    /// <summary>The variable that turns libtorch's oneDNN CPU kernels back on (<c>DREAMBOOTH_ONEDNN=1</c>); see <see cref="ConfigureOneDnn"/>.</summary>
    public const string OneDnnVariable = "DREAMBOOTH_ONEDNN";

    /// <summary>Whether libtorch's oneDNN (mkldnn) CPU kernels are on in this process, as <see cref="ConfigureOneDnn"/> left them (null: unknown).</summary>
    public static bool? OneDnnEnabled { get; private set; }

    /// <summary>
    /// Turns libtorch's oneDNN (mkldnn) CPU kernels off unless <c>DREAMBOOTH_ONEDNN=1</c>, and returns whether they are
    /// on afterwards (null if libtorch could not be reached). Why: with libtorch 2.10's bundled oneDNN, convolutions gave
    /// sporadic NaN and wrong values on this project's machines (AMD EPYC with AVX-512, 1 or 2 threads, any
    /// <c>DNNL_MAX_CPU_ISA</c>): about one UNet backward pass in 150–300 returned NaN, a class image generated twice
    /// with one seed differed by 255 levels, a stopped-and-resumed run was no longer bit-identical; with oneDNN off, none
    /// of this in the same runs. libtorch's own kernels are slower for this tiny model (measured in README, "Debian 12
    /// and libtorch"); on a CPU where oneDNN is sound, <c>DREAMBOOTH_ONEDNN=1</c> takes the speed back. CUDA is unaffected.
    /// </summary>
    public static bool? ConfigureOneDnn()
    {
        try
        {
            _ = TorchSharp.torch.get_num_threads(); // loads libtorch the way TorchSharp does, so the handle below is that copy
            if (!NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "torch_cpu.dll" : OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so", out var lib))
                return null;
            if (!NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var context)
                || !NativeLibrary.TryGetExport(lib, "_ZN2at7Context20setUserEnabledMkldnnEb", out var set)
                || !NativeLibrary.TryGetExport(lib, "_ZNK2at7Context17userEnabledMkldnnEv", out var get))
                return null; // a libtorch without these Itanium-ABI symbols (e.g. MSVC): leave it as it is
            unsafe
            {
                var ctx = ((delegate* unmanaged<nint>)context)();
                bool wanted = Environment.GetEnvironmentVariable(OneDnnVariable) is "1" or "true" or "TRUE" or "True";
                ((delegate* unmanaged<nint, byte, void>)set)(ctx, wanted ? (byte)1 : (byte)0);
                // Where NNPACK cannot start (e.g. "Unsupported hardware" on that EPYC), libtorch retries it and prints a
                // warning at every eligible convolution — thousands of lines per run once oneDNN is off: ask once, with
                // stderr silenced, and stop asking if it is not there.
                if (NativeLibrary.TryGetExport(lib, "_ZN2at6native17_nnpack_availableEv", out var available)
                    && NativeLibrary.TryGetExport(lib, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setNnpack)
                    && WithStderrSilenced(() => ((delegate* unmanaged<byte>)available)()) == 0)
                    ((delegate* unmanaged<nint, byte, void>)setNnpack)(ctx, 0);
                return ((delegate* unmanaged<nint, byte>)get)(ctx) != 0;
            }
        }
#pragma warning disable CA1031 // a library initializer must never make the assembly unusable: without libtorch there is nothing to configure
        catch (Exception) { return null; }
#pragma warning restore CA1031
    }
#pragma warning restore CA2255

    /// <summary>Sets the defaults if they are not set yet; returns whether OMP_WAIT_POLICY is now PASSIVE.</summary>
    public static bool Apply()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return false;
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { Length: > 0 } existing)
            return string.Equals(existing, "PASSIVE", StringComparison.OrdinalIgnoreCase);
        try
        {
            return setenv("OMP_WAIT_POLICY", "PASSIVE", 0) == 0;
        }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    }

    /// <summary>Models whose weights take at least this many bytes count as large (<see cref="ForModelOfSize"/>): SD 1.5's UNet alone is 1.7 GB in bf16, the tiny model 20 MB.</summary>
    public const long LargeModelBytes = 512L << 20;

    /// <summary>
    /// Called when a model is built: for a large one (<see cref="LargeModelBytes"/>) fixes glibc's mmap threshold (see
    /// the class remarks); returns whether the threshold is now fixed by this class.
    /// </summary>
    public static bool ForModelOfSize(long weightBytes)
    {
        if (weightBytes >= LargeModelBytes && !mmapThresholdFixed) mmapThresholdFixed = FixMmapThreshold();
        return mmapThresholdFixed;
    }

    static bool mmapThresholdFixed;

    /// <summary>Fixes glibc's mmap threshold (see the class remarks) unless MALLOC_MMAP_THRESHOLD_ is set; returns whether it did.</summary>
    public static bool FixMmapThreshold()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is { Length: > 0 }) return false;
        try
        {
            const int M_MMAP_THRESHOLD = -3;
            return mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1;
        }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    }

    /// <summary>Runs <paramref name="call"/> with file descriptor 2 pointed at /dev/null (native code's stderr), then restores it.</summary>
    static T WithStderrSilenced<T>(Func<T> call)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return call();
        int saved = dup(2), devNull = open("/dev/null", 1 /* O_WRONLY */);
        if (saved < 0 || devNull < 0 || dup2(devNull, 2) < 0)
        {
            if (saved >= 0) close(saved);
            if (devNull >= 0) close(devNull);
            return call();
        }
        try { return call(); }
        finally
        {
            dup2(saved, 2);
            close(saved);
            close(devNull);
        }
    }

    [DllImport("libc", EntryPoint = "dup")]
    private static extern int dup(int fd);

    [DllImport("libc", EntryPoint = "dup2")]
    private static extern int dup2(int oldFd, int newFd);

    [DllImport("libc", EntryPoint = "open", CharSet = CharSet.Ansi)]
    private static extern int open(string path, int flags);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int close(int fd);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi)]
    private static extern int setenv(string name, string value, int overwrite);
}
