using System.CommandLine;
using DreamBooth.Loading;
using DreamBooth.Loading.Hub;

namespace DreamBooth.Cli;

/// <summary>
/// Shared CLI plumbing: runs a command and turns expected failures into one readable line (<c>error: ...</c>) and exit
/// code 1. Output writers are per call (async-local), so tests can run commands in parallel in one process.
/// </summary>
public static class Cli
{
    /// <summary>Parses a prediction-type option value (epsilon/eps, v/v_prediction/v-prediction); the error names the option.</summary>
    public static DreamBooth.Sampling.PredictionType ParsePredictionType(string value, string option) => value.Trim().ToLowerInvariant() switch
    {
        "epsilon" or "eps" => DreamBooth.Sampling.PredictionType.Epsilon,
        "v" or "v_prediction" or "v-prediction" => DreamBooth.Sampling.PredictionType.VPrediction,
        _ => throw new CliException($"{option} '{value}': use epsilon or v"),
    };

    static readonly AsyncLocal<TextWriter?> CurrentOut = new();
    static readonly AsyncLocal<TextWriter?> CurrentErr = new();
    static readonly AsyncLocal<CancellationToken> CurrentCancel = new();

    /// <summary>Parses and runs <paramref name="args"/>; <paramref name="output"/>/<paramref name="error"/> default to the console.</summary>
    public static int Run(RootCommand root, string[] args, TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (output is not null) config.Output = output;
        if (error is not null) config.Error = error;
        CurrentOut.Value = output;
        CurrentErr.Value = error;
        CurrentCancel.Value = cancellationToken;
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (OperationCanceledException)
        {
            Err.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e) when (IsUserError(e))
        {
            Err.WriteLine($"error: {MessageOf(e)}");
            return 1;
        }
        finally
        {
            CurrentOut.Value = null;
            CurrentErr.Value = null;
            CurrentCancel.Value = default;
        }
    }

    /// <summary>The message without .NET's " (Parameter 'x')" suffix (the text already names the option).</summary>
    static string MessageOf(Exception e)
    {
        var m = e.Message;
        if (e is ArgumentException { ParamName: { } p })
        {
            // ArgumentOutOfRangeException adds "Actual value was …" after the suffix: say it as "(got …)"
            int at = m.IndexOf($" (Parameter '{p}')", StringComparison.Ordinal);
            if (at >= 0) m = m[..at];
            if (e is ArgumentOutOfRangeException { ActualValue: { } v }) m += $" (got {v})";
        }
        return m;
    }

    /// <summary>Failures whose message tells a person what to change (no stack trace needed).</summary>
    static bool IsUserError(Exception e) =>
        e is ModelLoadException or CliException or ArgumentException or IOException or InvalidOperationException
            or UnauthorizedAccessException or FormatException or KeyNotFoundException or InvalidDataException
            or HubException or PipelineFilesException;

    /// <summary>Where results go (stdout unless a test passes a writer).</summary>
    public static TextWriter Out => CurrentOut.Value ?? Console.Out;

    /// <summary>Where progress and errors go (stderr unless a test passes a writer).</summary>
    public static TextWriter Err => CurrentErr.Value ?? Console.Error;

    /// <summary>Cancelled by Ctrl+C (set up in <see cref="Program.Main"/>) or by the caller of <see cref="Run"/>.</summary>
    public static CancellationToken Cancellation => CurrentCancel.Value;

    /// <summary>True when <see cref="Err"/> is a terminal that can redraw a line in place.</summary>
    public static bool ErrIsInteractive => CurrentErr.Value is null && !Console.IsErrorRedirected;
}

/// <summary>A user error with a message that says what to change.</summary>
public sealed class CliException(string message) : Exception(message);
