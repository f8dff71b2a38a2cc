using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace DreamBooth;

/// <summary>
/// Process environment that libtorch reads once, when its native library loads. OpenMP's default active spin-waiting
/// makes libtorch several times slower as soon as anything else runs on a small machine (measured here on 2 cores), so
/// unless the user chose otherwise this sets <c>OMP_WAIT_POLICY=PASSIVE</c> before the first native call. It has to be
/// set in the native environment (<c>setenv</c>): .NET's Environment.SetEnvironmentVariable does not reach native code
/// on Linux.
/// </summary>
public static class NativeEnvironment
{
#pragma warning disable CA2255 // deliberate: a library initializer is the only hook that runs before a notebook's first torch call
    [ModuleInitializer]
    internal static void OnLoad() => Apply();
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

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi)]
    private static extern int setenv(string name, string value, int overwrite);
}
