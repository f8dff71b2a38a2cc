using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Cli;

/// <summary>Runs the `dreambooth` command line in-process and captures its output.</summary>
internal static class CliHarness
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public override string ToString() => $"exit {Code}\n--- stdout\n{Out}\n--- stderr\n{Err}";
    }

    public static Result Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = DreamBooth.Cli.Cli.Run(DreamBooth.Cli.Program.CreateRoot(), args, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    public static string TinyFolder => TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers");

    public static string Tiny(string name) => TestPaths.ParityPath("single-file", "tiny-sd1", name);
}
