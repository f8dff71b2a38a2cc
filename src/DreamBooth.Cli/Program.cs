using System.CommandLine;
using DreamBooth.Cli.Commands;

namespace DreamBooth.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("DreamBoothNotebooks: Stable Diffusion and DreamBooth fine-tuning on TorchSharp.");
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        root.Subcommands.Add(TinyWorldCommand.Create());
        return Cli.Run(root, args);
    }
}
