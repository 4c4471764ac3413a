using System.Reflection;

namespace TorchBoltzmann.Tests;

/// <summary>Properties of the test suite itself.</summary>
public class TestSuiteTests
{
    /// <summary>
    /// The test runner's default output names a skipped test but not its skip reason, so every test that can skip states
    /// in its display name when it runs ("(runs only …)"): a reader of the default output sees why it was skipped.
    /// </summary>
    [Fact]
    public void EverySkippableTest_NamesWhenItRuns()
    {
        var skippable = typeof(TestSuiteTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<SkippableFactAttribute>()))
            .Where(x => x.Attribute is not null)
            .ToList();
        Assert.NotEmpty(skippable);
        Assert.All(skippable, x =>
        {
            string name = x.Attribute!.DisplayName ?? "";
            Assert.True(name.Contains("(runs only", StringComparison.Ordinal) && name.Contains(x.Method.Name, StringComparison.Ordinal),
                $"{x.Method.DeclaringType!.Name}.{x.Method.Name}: its [SkippableFact] needs DisplayName = \"{x.Method.DeclaringType!.Name}.{x.Method.Name} (runs only …)\"");
        });
    }
}
