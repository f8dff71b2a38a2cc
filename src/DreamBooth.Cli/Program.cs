using System.CommandLine;
using DreamBooth.Cli.Commands;

namespace DreamBooth.Cli;

public static class Program
{
    public static int Main(string[] args) => Cli.Run(CreateRoot(), args);

    /// <summary>The command tree (tests run it in-process).</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("DreamBoothNotebooks: Stable Diffusion and DreamBooth fine-tuning on TorchSharp.");
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        return root;
    }
}
