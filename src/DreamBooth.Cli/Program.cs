using System.CommandLine;
using DreamBooth.Cli.Commands;

namespace DreamBooth.Cli;

public static class Program
{
    /// <summary>Every command of the <c>dreambooth</c> tool (tests run it in-process).</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("DreamBoothNotebooks: Stable Diffusion and DreamBooth fine-tuning on TorchSharp.");
        root.Subcommands.Add(QuickstartCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(GridCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(DownloadCommand.Create());
        root.Subcommands.Add(SessionCommand.Create());
        root.Subcommands.Add(ImagesCommand.Create());
        root.Subcommands.Add(IdentifierCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(TinyWorldCommand.Create());
        return root;
    }

    public static int Main(string[] args)
    {
        NativeEnvironment.Apply(); // before libtorch loads: OMP_WAIT_POLICY=PASSIVE unless the user set it
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cts.IsCancellationRequested) return; // a second Ctrl+C ends the process
            e.Cancel = true;
            cts.Cancel();
        };
        return Cli.Run(CreateRoot(), args, cancellationToken: cts.Token);
    }
}
