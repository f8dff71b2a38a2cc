using System.CommandLine;
using DreamBooth.Parity;

namespace DreamBooth.Cli.Commands;

public static class ParityCommand
{
    public static Command Create()
    {
        var folders = new Argument<string[]>("fixture-folder") { Description = "Fixture folders in the shared/parity format (searched recursively).", Arity = ArgumentArity.OneOrMore };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print every compared output, not only failures." };
        var cmd = new Command("parity", "Run reference fixtures (models, tokenizer cases, scheduler trajectories, DreamBooth loss) and report max abs errors.") { folders, verbose };
        cmd.SetAction(pr =>
        {
            int failed = 0, total = 0;
            bool v = pr.GetValue(verbose);
            foreach (var f in pr.GetValue(folders)!)
            {
                foreach (var r in ParityRunner.Run(f))
                {
                    total++;
                    if (!r.Passed) failed++;
                    var worst = r.Comparisons.Count == 0 ? "-" : r.WorstError.ToString("E2", System.Globalization.CultureInfo.InvariantCulture);
                    Cli.Out.WriteLine($"{(r.Passed ? "PASS" : "FAIL")}  {r.Kind,-22} worst {worst,-9} {r.Comparisons.Count,4} outputs  {r.Fixture}");
                    if (r.Error is not null) Cli.Out.WriteLine($"      error: {r.Error}");
                    foreach (var c in r.Comparisons.Where(c => v || !c.Passed))
                        Cli.Out.WriteLine($"      {(c.Passed ? "ok  " : "FAIL")} {c.Name,-48} max abs err {c.MaxAbsError:E2} (atol {c.Atol:G}, rtol {c.Rtol:G}){(c.Note is null ? "" : "  " + c.Note)}");
                }
            }
            Cli.Out.WriteLine($"{total - failed} passed, {failed} failed");
            return failed == 0 ? 0 : 1;
        });
        return cmd;
    }
}
