using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using DreamBooth.Tests.Infrastructure;
using Microsoft.DotNet.Interactive.Documents;
using Microsoft.DotNet.Interactive.Documents.Jupyter;

namespace DreamBooth.Tests.Notebooks;

/// <summary>
/// Fast, in-process checks of the committed notebooks (Microsoft.DotNet.Interactive.Documents parses them): C# cells,
/// no outputs committed, the first code cell references the engine as designed (pinned packages equal to
/// Directory.Packages.props, then ../artifacts/notebooks/DreamBooth*.dll), and every input has a default.
/// </summary>
public sealed partial class NotebookDocumentTests
{
    static InteractiveDocument Parse(string path)
    {
        var kernels = new KernelInfoCollection { new KernelInfo("csharp", "C#", ["c#", "C#"]) };
        return Notebook.Parse(File.ReadAllText(path), kernels);
    }

    static IReadOnlyDictionary<string, string> CentralVersions()
    {
        var doc = XDocument.Load(Path.Combine(TestPaths.RepoRoot, "Directory.Packages.props"));
        var props = doc.Descendants().Where(e => e.Parent?.Name.LocalName == "PropertyGroup").ToDictionary(e => e.Name.LocalName, e => e.Value);
        return doc.Descendants("PackageVersion").ToDictionary(
            e => (string)e.Attribute("Include")!,
            e => Regex.Replace((string)e.Attribute("Version")!, @"\$\((\w+)\)", m => props[m.Groups[1].Value]),
            StringComparer.OrdinalIgnoreCase);
    }

    [Fact]
    public void There_are_notebooks()
    {
        Assert.True(NotebookFiles.All.Count >= 4, $"expected the numbered notebooks in {NotebookFiles.Folder}");
        foreach (var f in NotebookFiles.All)
            Assert.Matches(@"^\d\d-[a-z0-9-]+\.ipynb$", Path.GetFileName(f));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Committed_without_outputs(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(NotebookFiles.Folder, name)));
        int i = 0;
        foreach (var cell in json.RootElement.GetProperty("cells").EnumerateArray())
        {
            i++;
            if (cell.TryGetProperty("outputs", out var outs))
                Assert.True(outs.GetArrayLength() == 0, $"{name} cell {i} has committed outputs; clear outputs before committing.");
            if (cell.TryGetProperty("execution_count", out var ec))
                Assert.True(ec.ValueKind == JsonValueKind.Null, $"{name} cell {i} has an execution count; clear outputs before committing.");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void All_code_is_csharp_and_the_first_cell_references_the_engine(string name)
    {
        var doc = Parse(Path.Combine(NotebookFiles.Folder, name));
        var code = doc.Elements.Where(e => e.KernelName != "markdown").ToList();
        Assert.NotEmpty(code);
        Assert.All(code, e => Assert.Equal("csharp", e.KernelName));

        var first = code[0].Contents.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var versions = CentralVersions();
        var nuget = first.Select(l => NugetRef().Match(l)).Where(m => m.Success).ToList();
        var packages = nuget.Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["TorchSharp-cpu", "TorchSharp.PyBridge", "Microsoft.ML.Tokenizers", "SixLabors.ImageSharp"], packages);
        foreach (var m in nuget)
            Assert.True(versions.TryGetValue(m.Groups[1].Value, out var v) && v == m.Groups[2].Value,
                $"{name}: #r \"nuget: {m.Groups[1].Value}, {m.Groups[2].Value}\" must pin the version in Directory.Packages.props ({v ?? "none"}).");
        var dlls = first.Select(l => DllRef().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["../artifacts/notebooks/DreamBooth.dll", "../artifacts/notebooks/DreamBooth.Notebooks.dll"], dlls);
        Assert.Contains(first, l => l.Trim() == "NotebookFormatters.Register();");
        // no other cell loads packages or assemblies: one place to change for GPU or a version bump
        foreach (var e in code.Skip(1))
            Assert.DoesNotContain("#r ", e.Contents, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Every_input_has_a_default(string name)
    {
        var doc = Parse(Path.Combine(NotebookFiles.Folder, name));
        foreach (var e in doc.Elements.Where(e => e.KernelName == "csharp"))
        {
            Assert.DoesNotContain("GetInputAsync", e.Contents, StringComparison.Ordinal);
            Assert.DoesNotContain("Console.ReadLine", e.Contents, StringComparison.Ordinal);
            foreach (var (method, args) in InputCalls(e.Contents))
            {
                int required = method == "Password" ? 1 : 2;
                Assert.True(args.Count >= required && args.Take(required).All(a => a.Trim().Length > 0),
                    $"{name}: Inputs.{method}({string.Join(", ", args)}) needs a prompt and a default value.");
            }
        }
    }

    [Fact]
    public void Input_call_parser_finds_arguments()
    {
        var calls = InputCalls("var a = await Inputs.Text(\"x, y\", f(1, 2)); var b = await Inputs.Int(\"n\");").ToList();
        Assert.Equal(2, calls.Count);
        Assert.Equal(["\"x, y\"", " f(1, 2)"], calls[0].Args);
        Assert.Single(calls[1].Args);
    }

    /// <summary>Finds <c>Inputs.Method(args)</c> calls and splits their top-level arguments (strings and nesting respected).</summary>
    static IEnumerable<(string Method, List<string> Args)> InputCalls(string code)
    {
        foreach (Match m in InputCall().Matches(code))
        {
            int i = m.Index + m.Length, depth = 1;
            var args = new List<string>();
            var current = new System.Text.StringBuilder();
            bool inString = false;
            for (; i < code.Length && depth > 0; i++)
            {
                char c = code[i];
                if (inString)
                {
                    current.Append(c);
                    if (c == '\\') { current.Append(code[++i]); continue; }
                    if (c == '"') inString = false;
                    continue;
                }
                switch (c)
                {
                    case '"': inString = true; current.Append(c); break;
                    case '(' or '[' or '{': depth++; current.Append(c); break;
                    case ')' or ']' or '}':
                        depth--;
                        if (depth > 0) current.Append(c);
                        break;
                    case ',' when depth == 1: args.Add(current.ToString()); current.Clear(); break;
                    default: current.Append(c); break;
                }
            }
            if (current.ToString().Trim().Length > 0) args.Add(current.ToString());
            yield return (m.Groups[1].Value, args);
        }
    }

    public static TheoryData<string> Names => NotebookFiles.Names;

    [GeneratedRegex(@"^\s*#r\s+""nuget:\s*([^,\s]+)\s*,\s*([^""\s]+)\s*""")]
    private static partial Regex NugetRef();

    [GeneratedRegex(@"^\s*#r\s+""([^"":]+\.dll)""")]
    private static partial Regex DllRef();

    [GeneratedRegex(@"\bInputs\.(\w+)(?:<[^>]*>)?\(")]
    private static partial Regex InputCall();
}
