using System.CommandLine;
using DreamBooth.Loading;

namespace DreamBooth.Cli;

/// <summary>Shared CLI plumbing: runs a command and turns expected failures into one readable line and exit code 1.</summary>
public static class Cli
{
    public static int Run(RootCommand root, string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (output is not null) config.Output = output;
        if (error is not null) config.Error = error;
        Out = output ?? Console.Out;
        Err = error ?? Console.Error;
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (Exception e) when (e is ModelLoadException or CliException or ArgumentException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            Err.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    public static TextWriter Out { get; private set; } = Console.Out;

    public static TextWriter Err { get; private set; } = Console.Error;
}

/// <summary>A user error with a message that says what to change.</summary>
public sealed class CliException(string message) : Exception(message);
